//! A socket's display name: read from the ledger the first time the socket needs it (a
//! bet or a chat message; a socket that only watches never reads it), then held by the
//! socket's task; changed by the player's `name` message, stored before it is used.
//! Another socket of the same player keeps the name it read until it reconnects.

use super::GatewayShared;
use super::connection::Connection;
use crate::display_name::{DisplayName, default_name};
use crate::ledger::NameOutcome;
use crate::protocol::{ErrorCode, ServerMessage};

/// The name a socket's task holds, once read or set.
#[derive(Debug, Default)]
pub struct SocketName {
    name: Option<String>,
}

impl SocketName {
    /// The player's display name: the one it picked, else its default. A ledger that
    /// fails gives the default this time and is asked again next time.
    pub async fn current(&mut self, shared: &GatewayShared, connection: &Connection) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        let player = connection.player();
        match shared.ledger.display_name(player).await {
            Ok(picked) => self
                .name
                .insert(picked.unwrap_or_else(|| default_name(player)))
                .clone(),
            Err(error) => {
                tracing::warn!(player, %error, "display name not read; the default is shown");
                default_name(player)
            }
        }
    }

    /// The player's `name` message: checks and stores `requested`, answers `name_ok` with
    /// the name as it will be shown, or `name_err` (nothing changed).
    pub async fn rename(
        &mut self,
        shared: &GatewayShared,
        connection: &Connection,
        req: String,
        requested: &str,
    ) -> ServerMessage {
        let refused = |code, message: String| ServerMessage::NameErr {
            req: req.clone(),
            code,
            message,
        };
        let name = match DisplayName::parse(requested) {
            Ok(name) => name,
            Err(error) => return refused(ErrorCode::InvalidName, error.to_string()),
        };
        let now_ms = crate::clock::unix_now_ms();
        match shared
            .ledger
            .set_display_name(connection.player(), &name, now_ms)
            .await
        {
            Ok(NameOutcome::Set) => {
                self.name = Some(name.to_string());
                ServerMessage::NameOk {
                    req,
                    name: name.to_string(),
                }
            }
            Ok(NameOutcome::Taken) => refused(
                ErrorCode::NameTaken,
                "another player has that name (or one too like it)".to_owned(),
            ),
            Err(error) => {
                tracing::warn!(player = connection.player(), %error, "display name not stored");
                refused(
                    ErrorCode::Internal,
                    "the name could not be saved; retry".to_owned(),
                )
            }
        }
    }
}
