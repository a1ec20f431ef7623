//! What only agents do on a connection: take, transfer, close, reopen,
//! and their status; and the check, before each of those and every send,
//! that the agent still may.
//!
//! The connection keeps the agent as it was at the hello. Revocations
//! (see `hub`) close the connection when a session ends or the agent's
//! rights change, but one can be lost (a Redis outage between nodes) or
//! still be on its way while a frame is read. So a privileged action first
//! asks the store for the session as it is now: an ended session, a
//! deactivated agent or a new role ends the connection instead of acting.

use kefu_protocol::ServerFrame;
use kefu_protocol::frame::{AgentStatus, ErrorCode, ErrorFrame, Update};

use super::{Connection, End, Peer};
use crate::hub::Revoked;
use crate::store::{self, now};
use crate::team;

impl Connection {
    /// Checks an agent's session against the store; a visitor passes.
    /// Ends the connection as signed out when the session is over or the
    /// agent deactivated, and as changed when its role or site is not the
    /// one it connected with; otherwise takes its other changes (a name).
    pub(super) async fn recheck_agent(&mut self) -> Result<(), End> {
        let Peer::Agent { agent, token_hash } = &self.peer else { return Ok(()) };
        let found = self.state.store.agent_by_session(token_hash, now()).await.map_err(|e| End::store(&e))?;
        let Some(found) = found else { return Err(End::revoked(Revoked::SignedOut)) };
        if (found.site, found.role) != (agent.site, agent.role) {
            return Err(End::revoked(Revoked::AccessChanged));
        }
        if let Peer::Agent { agent, .. } = &mut self.peer {
            *agent = found;
        }
        Ok(())
    }

    /// The agent on this connection as the store has it now, or an error
    /// frame for a visitor.
    async fn acting_agent(&mut self) -> Result<Option<team::Actor>, End> {
        self.recheck_agent().await?;
        if let Peer::Agent { agent, .. } = &self.peer {
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
