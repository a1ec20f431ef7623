//! The site's agents as assignment sees them: status, capacity, load.

use kefu_protocol::frame::AgentStatus;
use kefu_protocol::ids::{AgentId, SiteId};

use super::{Error, Store, Unsigned, int, undecodable};

/// An active agent of a site, with what auto-assignment weighs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: AgentId,
    pub name: String,
    pub status: AgentStatus,
    /// Open conversations assigned to the agent now.
    pub open: u32,
    pub capacity: u32,
    /// When the agent was last given a conversation: the round robin
    /// goes to whoever waited longest.
    pub last_assigned_at: u64,
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    id: Unsigned,
    name: String,
    status: String,
    open: Unsigned,
    capacity: Unsigned,
    last_assigned_at: Unsigned,
}

impl TryFrom<MemberRow> for Member {
    type Error = sqlx::Error;

    fn try_from(row: MemberRow) -> Result<Member, sqlx::Error> {
        let status = match row.status.as_str() {
            "online" => AgentStatus::Online,
            "away" => AgentStatus::Away,
            other => return Err(undecodable("agent status", other)),
        };
        Ok(Member {
            id: AgentId(row.id.0),
            name: row.name,
            status,
            open: row.open.small()?,
            capacity: row.capacity.small()?,
            last_assigned_at: row.last_assigned_at.0,
        })
    }
}

impl Store {
    /// The site's active agents with their load, by name.
    pub async fn team(&self, site: SiteId) -> Result<Vec<Member>, Error> {
        let rows: Vec<MemberRow> = sqlx::query_as(
            "SELECT agents.id, agents.name, agents.status, agents.capacity, agents.last_assigned_at, \
                 (SELECT COUNT(*) FROM conversations \
                  WHERE site_id = agents.site_id AND assignee_id = agents.id AND status = 'open') AS open \
             FROM agents WHERE site_id = $1 AND active ORDER BY name, id",
        )
        .bind(int(site.0))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(Member::try_from).collect::<Result<_, _>>()?)
    }

    /// One active agent of `site`, or `None`.
    pub async fn member(&self, site: SiteId, agent: AgentId) -> Result<Option<Member>, Error> {
        Ok(self.team(site).await?.into_iter().find(|member| member.id == agent))
    }

    /// Records whether an agent of `site` takes new chats.
    /// [`Error::NotFound`] if it is not one of `site`'s agents.
    pub async fn set_agent_status(&self, site: SiteId, agent: AgentId, status: AgentStatus) -> Result<(), Error> {
        let status = match status {
            AgentStatus::Online => "online",
            AgentStatus::Away => "away",
        };
        let done = sqlx::query("UPDATE agents SET status = $1 WHERE id = $2 AND site_id = $3")
            .bind(status)
            .bind(int(agent.0))
            .bind(int(site.0))
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound);
        }
        Ok(())
    }
}
