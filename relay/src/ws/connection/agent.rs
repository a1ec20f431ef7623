//! What only agents do on a connection: take, transfer, close, reopen,
//! and their status.

use kefu_protocol::ServerFrame;
use kefu_protocol::frame::{AgentStatus, ErrorCode, ErrorFrame, Update};

use super::{Connection, End, Peer};
use crate::{store, team};

impl Connection {
    /// The agent on this connection, or an error frame for a visitor.
    async fn acting_agent(&mut self) -> Result<Option<team::Actor>, End> {
        if let Peer::Agent(agent) = &self.peer {
            return Ok(Some(team::Actor {
                id: agent.id,
                site: agent.site,
                name: agent.name.clone(),
                admin: agent.role == store::Role::Admin,
            }));
        }
        self.write(&ServerFrame::Error(ErrorFrame {
            code: ErrorCode::Forbidden,
            text: "only agents assign, transfer, close and reopen chats".into(),
            reconnect: true,
        }))
        .await?;
        Ok(None)
    }

    pub(super) async fn on_update(&mut self, update: Update) -> Result<(), End> {
        let Some(actor) = self.acting_agent().await? else { return Ok(()) };
        let outcome =
            team::change(&self.state, &actor, update.conversation, update.change).await.map_err(|e| End::store(&e))?;
        let (code, text) = match outcome {
            Ok(()) => return Ok(()),
            Err(team::Refusal::Conflict(text)) => (ErrorCode::Conflict, text),
            Err(team::Refusal::Forbidden(text)) => (ErrorCode::Forbidden, text),
        };
        self.write(&ServerFrame::Error(ErrorFrame { code, text, reconnect: true })).await
    }

    pub(super) async fn on_status(&mut self, status: AgentStatus) -> Result<(), End> {
        let Some(actor) = self.acting_agent().await? else { return Ok(()) };
        self.mailbox.attend(actor.site, actor.id, status);
        team::set_status(&self.state, actor.site, actor.id, status).await.map_err(|e| End::store(&e))
    }
}
