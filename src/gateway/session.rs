//! The task of one socket: reads and answers the player's messages, finishes writes the
//! shard's fan-out could not complete, and enforces the per-message limits (size, rate).
//! It is woken only by its own socket's events, never by the broadcast of a frame the
//! kernel took at once. Pings, idle timeouts and shutdown are the shard's sweeps
//! (`shard::housekeeping_loop`), so an idle socket's task holds no timers.

use std::rc::Rc;

use tungstenite::protocol::{Role, WebSocketContext};
use tungstenite::{Error as WsError, Message};

use super::connection::{Connection, RateLimit, SocketIo};
use super::frame;
use super::shard::ShardState;
use crate::bus::{BusError, Command, CommandEnvelope, ReplyTo};
use crate::protocol::{self, ClientMessage, ErrorCode, ServerMessage, close_code};

/// Messages handled per readiness event before the task yields to its other duties.
const READ_BATCH_MESSAGES_MAX: usize = 64;

/// Runs until the socket is closed, by either side. `early_bytes` are what the client
/// sent right after its handshake, already read by hyper (usually none).
pub async fn run(shard: Rc<ShardState>, connection: Rc<Connection>, early_bytes: Vec<u8>) {
    let limits = &shard.shared.config;
    // Boxed and created on the first byte the client sends: a watching socket holds
    // neither the context nor its read buffer.
    let mut socket = (!early_bytes.is_empty()).then(|| {
        Box::new(WebSocketContext::from_partially_read(
            early_bytes,
            Role::Server,
            Some(shard.ws_config),
        ))
    });
    let mut rate = RateLimit::new(
        limits.inbound_messages_per_second_max,
        limits.inbound_messages_burst_max,
    );
    while !connection.is_finished() {
        let has_pending = connection.has_pending();
        tokio::select! {
            biased;
            ready = connection.stream().writable(), if has_pending => match ready {
                Ok(()) => connection.flush(),
                Err(_) => connection.mark_failed(),
            },
            _ = connection.wait_for_wake(), if !has_pending => {}
            ready = connection.stream().readable(), if !connection.is_closing() => match ready {
                Ok(()) => {
                    let socket = socket.get_or_insert_with(|| {
                        Box::new(WebSocketContext::new(Role::Server, Some(shard.ws_config)))
                    });
                    connection.touch_inbound();
                    let commands = read_messages(&shard, &connection, socket, &mut rate);
                    send_commands(&shard, &connection, commands).await;
                }
                Err(_) => connection.mark_failed(),
            },
        }
    }
}

/// Reads every complete message available now; returns the commands to forward.
fn read_messages(
    shard: &ShardState,
    connection: &Connection,
    socket: &mut WebSocketContext,
    rate: &mut RateLimit,
) -> Vec<(String, Command)> {
    let mut commands = Vec::new();
    for _ in 0..READ_BATCH_MESSAGES_MAX {
        let mut io = SocketIo { connection };
        match socket.read(&mut io) {
            Ok(Message::Text(text)) => {
                if !rate.allow() {
                    reply_error(connection, ErrorCode::RateLimited, "too many messages");
                    if rate.strikes > shard.shared.config.rate_limit_strikes_max {
                        connection.close(close_code::POLICY_VIOLATION, "rate limit exceeded");
                        break;
                    }
                    continue;
                }
                if let Some(command) = handle_text(connection, text.as_str()) {
                    commands.push(command);
                }
            }
            Ok(Message::Binary(_)) => {
                connection.close(
                    close_code::UNSUPPORTED_DATA,
                    "binary frames are not supported",
                );
                break;
            }
            Ok(Message::Close(_)) => {
                // Sends the close reply tungstenite queued.
                let _ = socket.flush(&mut SocketIo { connection });
                connection.mark_closing(close_code::GOING_AWAY);
                break;
            }
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
            Err(WsError::Io(error)) if error.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(WsError::Capacity(_)) => {
                connection.close(close_code::MESSAGE_TOO_BIG, "message too big");
                break;
            }
            Err(WsError::Utf8(_)) => {
                connection.close(close_code::INVALID_PAYLOAD, "invalid UTF-8");
                break;
            }
            Err(WsError::Protocol(_)) => {
                connection.close(close_code::PROTOCOL_ERROR, "protocol error");
                break;
            }
            Err(_) => {
                connection.mark_failed();
                break;
            }
        }
    }
    commands
}

/// Decodes one text message; answers what the gateway answers itself.
fn handle_text(connection: &Connection, text: &str) -> Option<(String, Command)> {
    match protocol::decode_client_message(text) {
        Ok(ClientMessage::Ping) => {
            let pong = ServerMessage::Pong {
                server_time: crate::engine::clock::unix_now_ms(),
            };
            connection.send_private(frame::text(protocol::encode(&pong).as_bytes()));
            None
        }
        Ok(ClientMessage::Bet {
            req,
            amount,
            auto,
            slot,
        }) => Some((
            req.clone(),
            Command::Bet {
                req,
                amount_minor: amount,
                auto_cashout_hundredths: auto,
                slot,
            },
        )),
        Ok(ClientMessage::Cashout { req, slot }) => {
            Some((req.clone(), Command::Cashout { req, slot }))
        }
        Err(error) => {
            reply_error(connection, error.code, &error.message);
            None
        }
    }
}

fn reply_error(connection: &Connection, code: ErrorCode, message: &str) {
    let error = ServerMessage::Error {
        code,
        message: message.to_owned(),
    };
    connection.send_private(frame::text(protocol::encode(&error).as_bytes()));
}

/// Forwards commands to the room's engine; a bus failure is answered at once.
async fn send_commands(
    shard: &ShardState,
    connection: &Connection,
    commands: Vec<(String, Command)>,
) {
    for (req, command) in commands {
        let is_bet = matches!(command, Command::Bet { .. });
        let envelope = CommandEnvelope {
            room: connection.room.clone(),
            from: ReplyTo {
                gateway: shard.shared.id.clone(),
                connection: connection.id,
                player: connection.player.clone(),
            },
            command,
        };
        let Err(error) = shard.shared.bus.send_command(envelope).await else {
            continue;
        };
        let (code, message) = match error {
            BusError::QueueFull { .. } => (
                ErrorCode::Overloaded,
                "the engine is busy; retry".to_owned(),
            ),
            other => (ErrorCode::Internal, other.to_string()),
        };
        let reply = if is_bet {
            ServerMessage::BetErr { req, code, message }
        } else {
            ServerMessage::CashoutErr { req, code, message }
        };
        connection.send_private(frame::text(protocol::encode(&reply).as_bytes()));
    }
}
