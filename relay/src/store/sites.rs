//! Sites and their widget settings, agents and agent sessions.

use kefu_protocol::ids::{AgentId, SiteId, SiteKey, Timestamp};
use sqlx::AnyConnection;

use super::{Agent, Backend, Error, Flag, Role, Site, Store, Unsigned, constraint, int, now, undecodable};

/// The capacity of an agent created without one; the schema's default.
pub const DEFAULT_CAPACITY: u32 = 3;

/// Which bottom corner of the page the widget's button sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WidgetPosition {
    Right,
    Left,
}

impl WidgetPosition {
    /// `"right"` or `"left"`, as stored and as the API shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            WidgetPosition::Right => "right",
            WidgetPosition::Left => "left",
        }
    }

    /// The position named `value` (`"right"` or `"left"`).
    pub fn parse(value: &str) -> Option<WidgetPosition> {
        match value {
            "right" => Some(WidgetPosition::Right),
            "left" => Some(WidgetPosition::Left),
            _ => None,
        }
    }
}

/// What an admin sets about a site's widget and console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteSettings {
    /// Whether agents see what the visitor is typing before it is sent.
    pub draft_preview: bool,
    /// Origins (`https://shop.example`) whose pages may open the widget;
    /// empty allows any.
    pub allowed_origins: Vec<String>,
    /// The widget's accent colour, `#rrggbb`.
    pub color: String,
    /// The first line visitors see, before anyone wrote; may be empty.
    pub greeting: String,
    /// Where the widget's button sits.
    pub position: WidgetPosition,
    /// The largest file the site takes, in bytes; the operator's
    /// ceiling (`--attachment-limit-mb`) still applies over it.
    pub max_file_bytes: u64,
}

/// A partial change of a site: `None` keeps the stored value. Values are
/// validated by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteUpdate {
    pub name: Option<String>,
    pub draft_preview: Option<bool>,
    pub color: Option<String>,
    pub greeting: Option<String>,
    pub position: Option<WidgetPosition>,
    pub allowed_origins: Option<Vec<String>>,
    pub max_file_bytes: Option<u64>,
}

/// A partial change of an agent: `None` keeps the stored value.
/// `password_hash` is a PHC string from `auth::hash_password`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentUpdate {
    pub name: Option<String>,
    pub role: Option<Role>,
    pub capacity: Option<u32>,
    pub active: Option<bool>,
    pub password_hash: Option<String>,
}

/// An agent a login might mean: see [`Store::agent_logins`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginCandidate {
    pub agent: Agent,
    pub site: Site,
    /// A PHC string from `auth::hash_password`.
    pub password_hash: String,
}

/// An agent to create. `password_hash` is a PHC string from
/// `auth::hash_password`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAgent<'a> {
    pub site: SiteId,
    pub email: &'a str,
    pub name: &'a str,
    pub password_hash: &'a str,
    pub role: Role,
    pub capacity: u32,
}

#[derive(sqlx::FromRow)]
struct SettingsRow {
    #[sqlx(try_from = "Flag")]
    draft_preview: bool,
    allowed_origins: String,
    color: String,
    greeting: String,
    position: String,
    max_file_bytes: Unsigned,
}

impl TryFrom<SettingsRow> for SiteSettings {
    type Error = sqlx::Error;

    fn try_from(row: SettingsRow) -> Result<SiteSettings, sqlx::Error> {
        let allowed_origins = serde_json::from_str(&row.allowed_origins)
            .map_err(|_| undecodable("allowed origins", &row.allowed_origins))?;
        let position = WidgetPosition::parse(&row.position).ok_or_else(|| undecodable("position", &row.position))?;
        Ok(SiteSettings {
            draft_preview: row.draft_preview,
            allowed_origins,
            color: row.color,
            greeting: row.greeting,
            position,
            max_file_bytes: row.max_file_bytes.0,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct SiteRow {
    id: Unsigned,
    key: String,
    name: String,
}

impl TryFrom<SiteRow> for Site {
    type Error = sqlx::Error;

    fn try_from(row: SiteRow) -> Result<Site, sqlx::Error> {
        let key = SiteKey::new(row.key).map_err(|error| undecodable("site key", error))?;
        Ok(Site { id: SiteId(row.id.0), key, name: row.name })
    }
}

#[derive(sqlx::FromRow)]
struct AgentRow {
    id: Unsigned,
    site_id: Unsigned,
    email: String,
    name: String,
    role: String,
    capacity: Unsigned,
    #[sqlx(try_from = "Flag")]
    active: bool,
}

impl TryFrom<AgentRow> for Agent {
    type Error = sqlx::Error;

    fn try_from(row: AgentRow) -> Result<Agent, sqlx::Error> {
        Ok(Agent {
            id: AgentId(row.id.0),
            site: SiteId(row.site_id.0),
            email: row.email,
            name: row.name,
            role: Role::from_column(&row.role)?,
            capacity: row.capacity.small()?,
            active: row.active,
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

const AGENT_COLUMNS: &str =
    "agents.id, agents.site_id, agents.email, agents.name, agents.role, agents.capacity, agents.active";

impl Store {
    /// How many sites exist; 0 means the relay has never been set up.
    pub async fn site_count(&self) -> Result<u64, Error> {
        let count: Unsigned = sqlx::query_scalar("SELECT COUNT(*) FROM sites").fetch_one(self.pool()).await?;
        Ok(count.0)
    }

    /// Creates a site. [`Error::Conflict`] if the key is taken.
    pub async fn create_site(&self, key: &SiteKey, name: &str) -> Result<Site, Error> {
        let mut connection = self.pool().acquire().await?;
        insert_site(&mut connection, key, name, now()).await
    }

    /// The site with that id.
    pub async fn site(&self, id: SiteId) -> Result<Option<Site>, Error> {
        let row: Option<SiteRow> = sqlx::query_as("SELECT id, key, name FROM sites WHERE id = $1")
            .bind(int(id.0))
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(Site::try_from).transpose()?)
    }

    /// The site with that public key.
    pub async fn site_by_key(&self, key: &SiteKey) -> Result<Option<Site>, Error> {
        let row: Option<SiteRow> = sqlx::query_as("SELECT id, key, name FROM sites WHERE key = $1")
            .bind(key.as_str())
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(Site::try_from).transpose()?)
    }

    /// Creates an agent. `password_hash` is a PHC string from
    /// `auth::hash_password`. [`Error::Conflict`] if the site has an agent
    /// with that email (emails compare case-insensitively; other sites'
    /// agents do not count), [`Error::NotFound`] if the site does not
    /// exist.
    pub async fn create_agent(
        &self,
        site: SiteId,
        email: &str,
        name: &str,
        password_hash: &str,
        role: Role,
    ) -> Result<Agent, Error> {
        self.add_agent(&NewAgent { site, email, name, password_hash, role, capacity: DEFAULT_CAPACITY }).await
    }

    /// Creates an agent as [`Store::create_agent`] does, with every field
    /// given.
    pub async fn add_agent(&self, new: &NewAgent<'_>) -> Result<Agent, Error> {
        let mut connection = self.pool().acquire().await?;
        insert_agent(&mut connection, new, now()).await
    }

    /// The agent with that id if it is one of `site`'s, active or not.
    pub async fn site_agent(&self, site: SiteId, id: AgentId) -> Result<Option<Agent>, Error> {
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1 AND site_id = $2");
        let row: Option<AgentRow> =
            sqlx::query_as(&sql).bind(int(id.0)).bind(int(site.0)).fetch_optional(self.pool()).await?;
        Ok(row.map(Agent::try_from).transpose()?)
    }

    /// Every agent of `site`, deactivated ones included, by name.
    pub async fn agents(&self, site: SiteId) -> Result<Vec<Agent>, Error> {
        let sql = format!("SELECT {AGENT_COLUMNS} FROM agents WHERE site_id = $1 ORDER BY name, id");
        let rows: Vec<AgentRow> = sqlx::query_as(&sql).bind(int(site.0)).fetch_all(self.pool()).await?;
        Ok(rows.into_iter().map(Agent::try_from).collect::<Result<_, _>>()?)
    }

    /// Changes an agent of `site` and returns it as it is now.
    /// Deactivating it also ends its sessions, in the same transaction, so
    /// no request gets through after the answer. [`Error::NotFound`] if it
    /// is not one of `site`'s agents.
    pub async fn update_agent(&self, site: SiteId, id: AgentId, update: &AgentUpdate) -> Result<Agent, Error> {
        let sql = format!(
            "UPDATE agents SET name = coalesce($1, name), role = coalesce($2, role), \
             capacity = coalesce($3, capacity), active = coalesce($4, active), \
             password_hash = coalesce($5, password_hash) \
             WHERE id = $6 AND site_id = $7 RETURNING {}",
            AGENT_COLUMNS.replace("agents.", "")
        );
        let mut tx = self.pool().begin().await?;
        let row: Option<AgentRow> = sqlx::query_as(&sql)
            .bind(update.name.as_deref())
            .bind(update.role.map(Role::column))
            .bind(update.capacity.map(i64::from))
            .bind(update.active)
            .bind(update.password_hash.as_deref())
            .bind(int(id.0))
            .bind(int(site.0))
            .fetch_optional(&mut *tx)
            .await?;
        let agent = Agent::try_from(row.ok_or(Error::NotFound)?)?;
        if !agent.active {
            sqlx::query("DELETE FROM agent_sessions WHERE agent_id = $1").bind(int(id.0)).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(agent)
    }

    /// The settings of `site`. [`Error::NotFound`] if it does not exist.
    pub async fn site_settings(&self, site: SiteId) -> Result<SiteSettings, Error> {
        let row: Option<SettingsRow> = sqlx::query_as(
            "SELECT draft_preview, allowed_origins, color, greeting, position, max_file_bytes FROM sites WHERE id = $1",
        )
        .bind(int(site.0))
        .fetch_optional(self.pool())
        .await?;
        Ok(SiteSettings::try_from(row.ok_or(Error::NotFound)?)?)
    }

    /// Changes `site` and returns it and its settings as they are now.
    /// [`Error::NotFound`] if it does not exist.
    pub async fn update_site(&self, site: SiteId, update: &SiteUpdate) -> Result<(Site, SiteSettings), Error> {
        let origins =
            update.allowed_origins.as_ref().map(|origins| serde_json::Value::from(origins.clone()).to_string());
        let done = sqlx::query(
            "UPDATE sites SET name = coalesce($1, name), draft_preview = coalesce($2, draft_preview), \
             color = coalesce($3, color), greeting = coalesce($4, greeting), position = coalesce($5, position), \
             allowed_origins = coalesce($6, allowed_origins), max_file_bytes = coalesce($7, max_file_bytes) \
             WHERE id = $8",
        )
        .bind(update.name.as_deref())
        .bind(update.draft_preview)
        .bind(update.color.as_deref())
        .bind(update.greeting.as_deref())
        .bind(update.position.map(WidgetPosition::as_str))
        .bind(origins)
        .bind(update.max_file_bytes.map(int))
        .bind(int(site.0))
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        let found = self.site(site).await?.ok_or(Error::NotFound)?;
        Ok((found, self.site_settings(site).await?))
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
        // Locked before the count, so two relays starting at once cannot
        // both see zero sites: SQLite's write lock, or on PostgreSQL the
        // sites table against other writers (readers go on).
        let mut tx = self.backend().begin_write(self.pool()).await?;
        if self.backend() == Backend::Postgres {
            sqlx::query("LOCK TABLE sites IN EXCLUSIVE MODE").execute(&mut *tx).await?;
        }
        let count: Unsigned = sqlx::query_scalar("SELECT COUNT(*) FROM sites").fetch_one(&mut *tx).await?;
        if count.0 > 0 {
            return Ok(None);
        }
        let created = insert_site_with_admin(&mut tx, key, site_name, admin_email, admin_name, password_hash).await?;
        // Whoever set the deployment up owns it.
        super::owners::insert_owner(&mut tx, admin_email).await?;
        tx.commit().await?;
        Ok(Some(created))
    }

    /// Creates a site and its first admin in one transaction, so no site
    /// is ever left without anyone able to log in (`kefu-relay site
    /// create`). [`Error::Conflict`] if the key is taken.
    pub async fn create_site_with_admin(
        &self,
        key: &SiteKey,
        site_name: &str,
        admin_email: &str,
        admin_name: &str,
        password_hash: &str,
    ) -> Result<(Site, Agent), Error> {
        let mut tx = self.backend().begin_write(self.pool()).await?;
        let created = insert_site_with_admin(&mut tx, key, site_name, admin_email, admin_name, password_hash).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Every site, oldest first: the operator's view (`kefu-relay site
    /// list`), never a site's own.
    pub async fn all_sites(&self) -> Result<Vec<Site>, Error> {
        let rows: Vec<SiteRow> =
            sqlx::query_as("SELECT id, key, name FROM sites ORDER BY id").fetch_all(self.pool()).await?;
        Ok(rows.into_iter().map(Site::try_from).collect::<Result<_, _>>()?)
    }

    /// Every agent with that email (case-insensitive), on any site, with
    /// its site and password hash, by site name: what a login checks the
    /// password against. The one read across sites, as a login comes
    /// before anyone is known to belong to one.
    pub async fn agent_logins(&self, email: &str) -> Result<Vec<LoginCandidate>, Error> {
        #[derive(sqlx::FromRow)]
        struct LoginRow {
            #[sqlx(flatten)]
            agent: AgentRow,
            password_hash: String,
            site_key: String,
            site_name: String,
        }
        // lower() on both sides is what the email indexes compare.
        let sql = format!(
            "SELECT {AGENT_COLUMNS}, agents.password_hash, sites.key AS site_key, sites.name AS site_name \
             FROM agents JOIN sites ON sites.id = agents.site_id \
             WHERE lower(agents.email) = lower($1) ORDER BY sites.name, sites.id"
        );
        let rows: Vec<LoginRow> = sqlx::query_as(&sql).bind(email).fetch_all(self.pool()).await?;
        rows.into_iter()
            .map(|row| {
                let site = Site::try_from(SiteRow { id: row.agent.site_id, key: row.site_key, name: row.site_name })?;
                Ok(LoginCandidate { agent: Agent::try_from(row.agent)?, site, password_hash: row.password_hash })
            })
            .collect()
    }

    /// Records a login of an agent of `site`. `token_hash` is
    /// `auth::token_hash` of the token handed to the agent; the token
    /// itself is never stored. Expired sessions are pruned here so the
    /// table does not grow forever. [`Error::NotFound`] if the agent is
    /// not one of `site`'s.
    pub async fn create_agent_session(
        &self,
        site: SiteId,
        agent: AgentId,
        token_hash: &str,
        expires_at: Timestamp,
    ) -> Result<(), Error> {
        let now = now();
        sqlx::query("DELETE FROM agent_sessions WHERE expires_at <= $1").bind(int(now.0)).execute(self.pool()).await?;
        let done = sqlx::query(
            "INSERT INTO agent_sessions (token_hash, agent_id, created_at, expires_at) \
             SELECT $1, id, $3, $4 FROM agents WHERE id = $2 AND site_id = $5",
        )
        .bind(token_hash)
        .bind(int(agent.0))
        .bind(int(now.0))
        .bind(int(expires_at.0))
        .bind(int(site.0))
        .execute(self.pool())
        .await
        .map_err(|error| constraint(error, "agent session"))?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }

    /// The agent logged in with that token hash, unless the session is
    /// unknown or expired at `now`, or the agent was deactivated.
    pub async fn agent_by_session(&self, token_hash: &str, now: Timestamp) -> Result<Option<Agent>, Error> {
        let sql = format!(
            "SELECT {AGENT_COLUMNS} FROM agent_sessions \
             JOIN agents ON agents.id = agent_sessions.agent_id \
             WHERE agent_sessions.token_hash = $1 AND agent_sessions.expires_at > $2 AND agents.active"
        );
        let row: Option<AgentRow> =
            sqlx::query_as(&sql).bind(token_hash).bind(int(now.0)).fetch_optional(self.pool()).await?;
        Ok(row.map(Agent::try_from).transpose()?)
    }

    /// Ends the session with that token hash (logout); nothing happens
    /// for an unknown one.
    pub async fn delete_agent_session(&self, token_hash: &str) -> Result<(), Error> {
        sqlx::query("DELETE FROM agent_sessions WHERE token_hash = $1").bind(token_hash).execute(self.pool()).await?;
        Ok(())
    }

    /// Ends every session of `site`'s agent `agent` but the one with the
    /// token hash `kept`, if given (a password change: whoever knew the
    /// old one is signed out). Nothing happens for another site's agent.
    pub async fn end_agent_sessions(&self, site: SiteId, agent: AgentId, kept: Option<&str>) -> Result<(), Error> {
        sqlx::query(
            "DELETE FROM agent_sessions WHERE agent_id = $1 AND token_hash <> coalesce($2, '') \
             AND agent_id IN (SELECT id FROM agents WHERE site_id = $3)",
        )
        .bind(int(agent.0))
        .bind(kept)
        .bind(int(site.0))
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// A site and its first admin, on `connection` (inside the caller's
/// transaction, so neither exists without the other).
async fn insert_site_with_admin(
    connection: &mut AnyConnection,
    key: &SiteKey,
    site_name: &str,
    admin_email: &str,
    admin_name: &str,
    password_hash: &str,
) -> Result<(Site, Agent), Error> {
    let now = now();
    let site = insert_site(connection, key, site_name, now).await?;
    let admin = NewAgent {
        site: site.id,
        email: admin_email,
        name: admin_name,
        password_hash,
        role: Role::Admin,
        capacity: DEFAULT_CAPACITY,
    };
    let agent = insert_agent(connection, &admin, now).await?;
    Ok((site, agent))
}

async fn insert_site(connection: &mut AnyConnection, key: &SiteKey, name: &str, now: Timestamp) -> Result<Site, Error> {
    let id: Unsigned = sqlx::query_scalar("INSERT INTO sites (key, name, created_at) VALUES ($1, $2, $3) RETURNING id")
        .bind(key.as_str())
        .bind(name)
        .bind(int(now.0))
        .fetch_one(&mut *connection)
        .await
        .map_err(|error| constraint(error, "site key"))?;
    Ok(Site { id: SiteId(id.0), key: key.clone(), name: name.to_owned() })
}

async fn insert_agent(connection: &mut AnyConnection, new: &NewAgent<'_>, now: Timestamp) -> Result<Agent, Error> {
    let id: Unsigned = sqlx::query_scalar(
        "INSERT INTO agents (site_id, email, name, password_hash, role, capacity, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(int(new.site.0))
    .bind(new.email)
    .bind(new.name)
    .bind(new.password_hash)
    .bind(new.role.column())
    .bind(i64::from(new.capacity))
    .bind(int(now.0))
    .fetch_one(&mut *connection)
    .await
    .map_err(|error| constraint(error, "agent email"))?;
    Ok(Agent {
        id: AgentId(id.0),
        site: new.site,
        email: new.email.to_owned(),
        name: new.name.to_owned(),
        role: new.role,
        capacity: new.capacity,
        active: true,
    })
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::store::tests::{TestDb, on_both_backends};

    async fn store(db: TestDb) -> (TestDb, Store, Site, Site) {
        let store = db.open().await;
        let a = store.create_site(&SiteKey::new("a").unwrap(), "A").await.unwrap();
        let b = store.create_site(&SiteKey::new("b").unwrap(), "B").await.unwrap();
        (db, store, a, b)
    }

    async fn site_settings_start_at_the_defaults_and_change_in_part(db: TestDb) {
        let (_dir, store, a, b) = store(db).await;
        let defaults = store.site_settings(a.id).await.unwrap();
        assert_eq!(
            defaults,
            SiteSettings {
                draft_preview: true,
                allowed_origins: Vec::new(),
                color: "#2563eb".into(),
                greeting: String::new(),
                position: WidgetPosition::Right,
                max_file_bytes: 20_000_000,
            }
        );
        let update = SiteUpdate {
            draft_preview: Some(false),
            position: Some(WidgetPosition::Left),
            allowed_origins: Some(vec!["https://shop.example".into()]),
            max_file_bytes: Some(5_000_000),
            ..SiteUpdate::default()
        };
        let (site, settings) = store.update_site(a.id, &update).await.unwrap();
        assert_eq!(site, a);
        assert!(!settings.draft_preview);
        assert_eq!((settings.position, settings.color.as_str()), (WidgetPosition::Left, "#2563eb"));
        assert_eq!(settings.allowed_origins, ["https://shop.example"]);
        assert_eq!(settings.max_file_bytes, 5_000_000);
        let renamed = SiteUpdate { name: Some("Shop".into()), greeting: Some("Hi!".into()), ..SiteUpdate::default() };
        let (site, settings) = store.update_site(a.id, &renamed).await.unwrap();
        assert_eq!((site.name.as_str(), settings.greeting.as_str()), ("Shop", "Hi!"));
        assert!(!settings.draft_preview, "untouched fields are kept");
        assert_eq!(store.site_settings(b.id).await.unwrap(), defaults);
        assert!(matches!(store.site_settings(SiteId(999)).await, Err(Error::NotFound)));
        assert!(matches!(store.update_site(SiteId(999), &renamed).await, Err(Error::NotFound)));
    }

    async fn deactivating_an_agent_ends_its_sessions_and_other_sites_cannot_touch_it(db: TestDb) {
        let (_dir, store, a, b) = store(db).await;
        let new = NewAgent {
            site: a.id,
            email: "ann@example.com",
            name: "Ann",
            password_hash: "phc",
            role: Role::Agent,
            capacity: 2,
        };
        let ann = store.add_agent(&new).await.unwrap();
        assert_eq!((ann.capacity, ann.active), (2, true));
        store.create_agent_session(a.id, ann.id, "session", Timestamp(u64::from(u32::MAX) * 1000)).await.unwrap();
        assert!(store.agent_by_session("session", now()).await.unwrap().is_some());

        let promote = AgentUpdate { role: Some(Role::Admin), capacity: Some(5), ..AgentUpdate::default() };
        assert!(matches!(store.update_agent(b.id, ann.id, &promote).await, Err(Error::NotFound)));
        assert_eq!(store.site_agent(b.id, ann.id).await.unwrap(), None);
        let promoted = store.update_agent(a.id, ann.id, &promote).await.unwrap();
        assert_eq!((promoted.role, promoted.capacity, promoted.name.as_str()), (Role::Admin, 5, "Ann"));
        assert!(store.agent_by_session("session", now()).await.unwrap().is_some(), "still logged in");

        let deactivate = AgentUpdate { active: Some(false), ..AgentUpdate::default() };
        let gone = store.update_agent(a.id, ann.id, &deactivate).await.unwrap();
        assert!(!gone.active);
        assert_eq!(store.agent_by_session("session", now()).await.unwrap(), None);
        // Even a session made after (by a stale login) does not work.
        store.create_agent_session(a.id, ann.id, "late", Timestamp(u64::from(u32::MAX) * 1000)).await.unwrap();
        assert_eq!(store.agent_by_session("late", now()).await.unwrap(), None);
        assert_eq!(store.agents(a.id).await.unwrap(), [gone]);
        assert!(store.agents(b.id).await.unwrap().is_empty());
    }

    async fn logging_out_deletes_only_that_session(db: TestDb) {
        let (_dir, store, a, _) = store(db).await;
        let ann = store.create_agent(a.id, "ann@example.com", "Ann", "phc", Role::Agent).await.unwrap();
        let later = Timestamp(u64::from(u32::MAX) * 1000);
        store.create_agent_session(a.id, ann.id, "one", later).await.unwrap();
        store.create_agent_session(a.id, ann.id, "two", later).await.unwrap();
        store.delete_agent_session("one").await.unwrap();
        store.delete_agent_session("unknown").await.unwrap();
        assert_eq!(store.agent_by_session("one", now()).await.unwrap(), None);
        assert!(store.agent_by_session("two", now()).await.unwrap().is_some());
    }

    async fn a_new_password_ends_every_session_but_the_kept_one_of_that_agent_only(db: TestDb) {
        let (_dir, store, a, b) = store(db).await;
        let ann = store.create_agent(a.id, "ann@example.com", "Ann", "phc", Role::Agent).await.unwrap();
        let bob = store.create_agent(a.id, "bob@example.com", "Bob", "phc", Role::Agent).await.unwrap();
        let later = Timestamp(u64::from(u32::MAX) * 1000);
        for (agent, hash) in [(ann.id, "phone"), (ann.id, "laptop"), (ann.id, "tablet"), (bob.id, "bob")] {
            store.create_agent_session(a.id, agent, hash, later).await.unwrap();
        }
        store.end_agent_sessions(b.id, ann.id, None).await.unwrap();
        assert!(store.agent_by_session("phone", now()).await.unwrap().is_some(), "another site cannot end them");
        store.end_agent_sessions(a.id, ann.id, Some("laptop")).await.unwrap();
        assert_eq!(store.agent_by_session("phone", now()).await.unwrap(), None);
        assert_eq!(store.agent_by_session("tablet", now()).await.unwrap(), None);
        assert!(store.agent_by_session("laptop", now()).await.unwrap().is_some(), "the kept one");
        assert!(store.agent_by_session("bob", now()).await.unwrap().is_some(), "another agent's");
        store.end_agent_sessions(a.id, ann.id, None).await.unwrap();
        assert_eq!(store.agent_by_session("laptop", now()).await.unwrap(), None);
    }

    on_both_backends![
        site_settings_start_at_the_defaults_and_change_in_part,
        deactivating_an_agent_ends_its_sessions_and_other_sites_cannot_touch_it,
        logging_out_deletes_only_that_session,
        a_new_password_ends_every_session_but_the_kept_one_of_that_agent_only
    ];
}
