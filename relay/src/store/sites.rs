//! Sites, agents and agent sessions.

use kefu_protocol::ids::{AgentId, SiteId, SiteKey, Timestamp};
use sqlx::{Connection, SqliteConnection};

use super::{Agent, Error, Role, Site, Store, constraint, int, now, undecodable};

#[derive(sqlx::FromRow)]
struct SiteRow {
    id: u64,
    key: String,
    name: String,
}

impl TryFrom<SiteRow> for Site {
    type Error = sqlx::Error;

    fn try_from(row: SiteRow) -> Result<Site, sqlx::Error> {
        let key = SiteKey::new(row.key).map_err(|error| undecodable("site key", error))?;
        Ok(Site { id: SiteId(row.id), key, name: row.name })
    }
}

#[derive(sqlx::FromRow)]
struct AgentRow {
    id: u64,
    site_id: u64,
    email: String,
    name: String,
    role: String,
}

impl TryFrom<AgentRow> for Agent {
    type Error = sqlx::Error;

    fn try_from(row: AgentRow) -> Result<Agent, sqlx::Error> {
        Ok(Agent {
            id: AgentId(row.id),
            site: SiteId(row.site_id),
            email: row.email,
            name: row.name,
            role: Role::from_column(&row.role)?,
        })
    }
}

impl Role {
    fn column(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Agent => "agent",
        }
    }

    fn from_column(value: &str) -> Result<Role, sqlx::Error> {
        match value {
            "admin" => Ok(Role::Admin),
            "agent" => Ok(Role::Agent),
            other => Err(undecodable("agent role", other)),
        }
    }
}

const AGENT_COLUMNS: &str = "agents.id, agents.site_id, agents.email, agents.name, agents.role";

impl Store {
    /// How many sites exist; 0 means the relay has never been set up.
    pub async fn site_count(&self) -> Result<u64, Error> {
        let count: u64 = sqlx::query_scalar("SELECT COUNT(*) FROM sites").fetch_one(self.pool()).await?;
        Ok(count)
    }

    /// Creates a site. [`Error::Conflict`] if the key is taken.
    pub async fn create_site(&self, key: &SiteKey, name: &str) -> Result<Site, Error> {
        let mut connection = self.pool().acquire().await?;
        insert_site(&mut connection, key, name, now()).await
    }

    /// The site with that id.
    pub async fn site(&self, id: SiteId) -> Result<Option<Site>, Error> {
        let row: Option<SiteRow> = sqlx::query_as("SELECT id, key, name FROM sites WHERE id = ?")
            .bind(int(id.0))
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(Site::try_from).transpose()?)
    }

    /// The site with that public key.
    pub async fn site_by_key(&self, key: &SiteKey) -> Result<Option<Site>, Error> {
        let row: Option<SiteRow> = sqlx::query_as("SELECT id, key, name FROM sites WHERE key = ?")
            .bind(key.as_str())
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(Site::try_from).transpose()?)
    }

    /// Creates an agent. `password_hash` is a PHC string from
    /// `auth::hash_password`. [`Error::Conflict`] if the email is taken
    /// (emails compare case-insensitively), [`Error::NotFound`] if the
    /// site does not exist.
    pub async fn create_agent(
        &self,
        site: SiteId,
        email: &str,
        name: &str,
        password_hash: &str,
        role: Role,
    ) -> Result<Agent, Error> {
        let mut connection = self.pool().acquire().await?;
        let new = NewAgent { site, email, name, password_hash, role };
        insert_agent(&mut connection, &new, now()).await
    }

    /// Creates the first site and its admin in one transaction, so a crash
    /// can never leave a site without anyone able to log in. `None` (and
    /// nothing written) when a site already exists.
    pub async fn create_first_site(
        &self,
        key: &SiteKey,
        site_name: &str,
        admin_email: &str,
        admin_name: &str,
        password_hash: &str,
    ) -> Result<Option<(Site, Agent)>, Error> {
        let now = now();
        let mut connection = self.pool().acquire().await?;
        // IMMEDIATE takes the write lock before the count, so two relays
        // starting on one file cannot both see zero sites.
        let mut tx = connection.begin_with("BEGIN IMMEDIATE").await?;
        let count: u64 = sqlx::query_scalar("SELECT COUNT(*) FROM sites").fetch_one(&mut *tx).await?;
        if count > 0 {
            return Ok(None);
        }
        let site = insert_site(&mut tx, key, site_name, now).await?;
        let admin = NewAgent { site: site.id, email: admin_email, name: admin_name, password_hash, role: Role::Admin };
        let agent = insert_agent(&mut tx, &admin, now).await?;
        tx.commit().await?;
        Ok(Some((site, agent)))
    }

    /// The agent with that email (case-insensitive) and its password hash,
    /// for checking a login.
    pub async fn agent_login(&self, email: &str) -> Result<Option<(Agent, String)>, Error> {
        #[derive(sqlx::FromRow)]
        struct LoginRow {
            #[sqlx(flatten)]
            agent: AgentRow,
            password_hash: String,
        }
        let sql = format!("SELECT {AGENT_COLUMNS}, agents.password_hash FROM agents WHERE email = ?");
        let row: Option<LoginRow> = sqlx::query_as(&sql).bind(email).fetch_optional(self.pool()).await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some((Agent::try_from(row.agent)?, row.password_hash)))
    }

    /// Records a login. `token_hash` is `auth::token_hash` of the token
    /// handed to the agent; the token itself is never stored. Expired
    /// sessions are pruned here so the table does not grow forever.
    pub async fn create_agent_session(
        &self,
        agent: AgentId,
        token_hash: &str,
        expires_at: Timestamp,
    ) -> Result<(), Error> {
        let now = now();
        sqlx::query("DELETE FROM agent_sessions WHERE expires_at <= ?").bind(int(now.0)).execute(self.pool()).await?;
        sqlx::query(
            "INSERT INTO agent_sessions (token_hash, agent_id, created_at, expires_at) \
             VALUES (?, ?, ?, ?)",
        )
        .bind(token_hash)
        .bind(int(agent.0))
        .bind(int(now.0))
        .bind(int(expires_at.0))
        .execute(self.pool())
        .await
        .map_err(|error| constraint(error, "agent session"))?;
        Ok(())
    }

    /// The agent logged in with that token hash, unless the session is
    /// unknown or expired at `now`.
    pub async fn agent_by_session(&self, token_hash: &str, now: Timestamp) -> Result<Option<Agent>, Error> {
        let sql = format!(
            "SELECT {AGENT_COLUMNS} FROM agent_sessions \
             JOIN agents ON agents.id = agent_sessions.agent_id \
             WHERE agent_sessions.token_hash = ? AND agent_sessions.expires_at > ?"
        );
        let row: Option<AgentRow> =
            sqlx::query_as(&sql).bind(token_hash).bind(int(now.0)).fetch_optional(self.pool()).await?;
        Ok(row.map(Agent::try_from).transpose()?)
    }
}

struct NewAgent<'a> {
    site: SiteId,
    email: &'a str,
    name: &'a str,
    password_hash: &'a str,
    role: Role,
}

async fn insert_site(
    connection: &mut SqliteConnection,
    key: &SiteKey,
    name: &str,
    now: Timestamp,
) -> Result<Site, Error> {
    let id: u64 = sqlx::query_scalar("INSERT INTO sites (key, name, created_at) VALUES (?, ?, ?) RETURNING id")
        .bind(key.as_str())
        .bind(name)
        .bind(int(now.0))
        .fetch_one(&mut *connection)
        .await
        .map_err(|error| constraint(error, "site key"))?;
    Ok(Site { id: SiteId(id), key: key.clone(), name: name.to_owned() })
}

async fn insert_agent(connection: &mut SqliteConnection, new: &NewAgent<'_>, now: Timestamp) -> Result<Agent, Error> {
    let id: u64 = sqlx::query_scalar(
        "INSERT INTO agents (site_id, email, name, password_hash, role, created_at) \
         VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(int(new.site.0))
    .bind(new.email)
    .bind(new.name)
    .bind(new.password_hash)
    .bind(new.role.column())
    .bind(int(now.0))
    .fetch_one(&mut *connection)
    .await
    .map_err(|error| constraint(error, "agent email"))?;
    Ok(Agent {
        id: AgentId(id),
        site: new.site,
        email: new.email.to_owned(),
        name: new.name.to_owned(),
        role: new.role,
    })
}
