//! The task of one socket: reads and answers the player's messages, finishes writes the
//! shard's fan-out could not complete, enforces the per-message limits (size, rate;
//! WebSocket pings and pongs count as messages) and ends a close cleanly: once our close
//! frame is written it shuts down the write side (FIN) and discards what the peer still
//! sends, so the peer reads the close code instead of a reset. A socket opened without a
//! URL token first goes through `first_message_player` (its `auth` message).
//! It is woken only by its own socket's events, never by the broadcast of a frame the
//! kernel took at once. Pings, idle timeouts, close deadlines and shutdown are the
//! shard's sweeps (`shard::housekeeping_loop`), so a socket's task holds no timers.

use std::net::Shutdown;
use std::rc::Rc;

use tokio_util::sync::CancellationToken;
use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
use tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::GatewayShared;
use super::connection::{Connection, RateLimit, SocketIo, Verdict};
use super::frame;
use super::names::SocketName;
use crate::auth::TokenKeys;
use crate::bus::{BusError, Command, CommandEnvelope, ReplyTo, RequestId, RequestKind};
use crate::config::GatewayConfig;
use crate::metrics::gateway::{CloseReason, socket_closed};
use crate::protocol::{self, ClientMessage, ErrorCode, ServerMessage, close_code};

/// Messages handled per readiness event before the task yields to its other duties.
const READ_BATCH_MESSAGES_MAX: usize = 64;

/// Bytes discarded per read while draining a closed socket. The buffer is allocated when
/// the drain starts: an array held across an await would sit in every socket's task, for
/// its whole life (4 KiB per socket, measured as RSS per connection going 3.6 → 8 KiB).
const DRAIN_CHUNK_BYTES: usize = 4096;

/// A socket's reading state: the tungstenite context and the rate limit.
pub struct Inbound {
    /// Boxed and created on the first byte the client sends: a watching socket holds
    /// neither the context nor its read buffer.
    socket: Option<Box<WebSocketContext>>,
    ws_config: WebSocketConfig,
    rate: RateLimit,
}

/// What one read gave, once the rate limit had its say.
enum Next {
    /// A text message within the rate limit.
    Text(Utf8Bytes),
    /// A text message over the rate limit: answered `rate_limited` and dropped.
    Refused,
    /// A ping or pong (tungstenite answered a ping already; at most one pong waits).
    Control,
    /// Nothing more to read now, or the socket is closing.
    Stop,
}

impl Inbound {
    /// `early_bytes` are what the client sent right after its handshake, already read
    /// by hyper (usually none).
    pub fn new(
        ws_config: WebSocketConfig,
        config: &GatewayConfig,
        early_bytes: Vec<u8>,
    ) -> Inbound {
        let socket = (!early_bytes.is_empty()).then(|| {
            Box::new(WebSocketContext::from_partially_read(
                early_bytes,
                Role::Server,
                Some(ws_config),
            ))
        });
        Inbound {
            socket,
            ws_config,
            rate: RateLimit::new(config, tokio::time::Instant::now()),
        }
    }

    /// Reads one message; decides the socket's close for binary frames, protocol errors,
    /// oversize messages, the client's close and rate-limit abuse.
    fn next(&mut self, connection: &Connection) -> Next {
        let ws_config = self.ws_config;
        let socket = self
            .socket
            .get_or_insert_with(|| Box::new(WebSocketContext::new(Role::Server, Some(ws_config))));
        let mut io = SocketIo { connection };
        match socket.read(&mut io) {
            Ok(message @ (Message::Text(_) | Message::Ping(_) | Message::Pong(_))) => {
                match (self.rate.check(tokio::time::Instant::now()), message) {
                    (Verdict::Abusive, _) => {
                        if connection.close(close_code::POLICY_VIOLATION, "rate limit exceeded") {
                            socket_closed(CloseReason::RateLimit);
                        }
                        Next::Stop
                    }
                    (Verdict::Allowed, Message::Text(text)) => Next::Text(text),
                    (Verdict::Refused, Message::Text(_)) => Next::Refused,
                    _ => Next::Control,
                }
            }
            Ok(Message::Binary(_)) => {
                connection.close(
                    close_code::UNSUPPORTED_DATA,
                    "binary frames are not supported",
                );
                Next::Stop
            }
            Ok(Message::Close(_)) => {
                // Sends the close reply tungstenite queued.
                let _ = socket.flush(&mut SocketIo { connection });
                connection.mark_closing(close_code::GOING_AWAY);
                Next::Stop
            }
            Ok(Message::Frame(_)) => Next::Control,
            Err(WsError::Io(error)) if error.kind() == std::io::ErrorKind::WouldBlock => Next::Stop,
            Err(WsError::Capacity(_)) => {
                connection.close(close_code::MESSAGE_TOO_BIG, "message too big");
                Next::Stop
            }
            Err(WsError::Utf8(_)) => {
                connection.close(close_code::INVALID_PAYLOAD, "invalid UTF-8");
                Next::Stop
            }
            Err(WsError::Protocol(_)) => {
                connection.close(close_code::PROTOCOL_ERROR, "protocol error");
                Next::Stop
            }
            Err(_) => {
                connection.mark_failed();
                Next::Stop
            }
        }
    }
}

/// Runs an authenticated socket until it is closed, by either side, and drained.
/// `shutdown` is the shard's: it cuts the drain after a close short.
pub async fn run(
    shared: &GatewayShared,
    shutdown: &CancellationToken,
    connection: Rc<Connection>,
    mut inbound: Inbound,
) {
    let mut name = SocketName::default();
    while until_readable(&connection).await {
        let messages = read_messages(&connection, &mut inbound);
        if !messages.is_empty() {
            // Boxed: what answering holds across its ledger and bus calls lives only
            // while it runs, not in the task of every socket that only watches.
            Box::pin(answer(shared, &connection, &mut name, messages)).await;
        }
    }
    finish_close(shared, shutdown, &connection).await;
}

/// Does what the messages ask, in order: requests and chat to the engine, names here.
async fn answer(
    shared: &GatewayShared,
    connection: &Connection,
    name: &mut SocketName,
    messages: Vec<Outgoing>,
) {
    for message in messages {
        match message {
            Outgoing::Request(req, command) => {
                send_request(shared, connection, name, req, command).await;
            }
            Outgoing::Chat(text) => send_chat(shared, connection, name, text).await,
            Outgoing::Rename {
                req,
                name: requested,
            } => {
                let answer = name.rename(shared, connection, req, &requested).await;
                send_message(connection, &answer);
            }
        }
    }
}

/// The first-message handshake of a socket opened without `token` in its URL: this is
/// where such a socket learns its player. Returns the player of the first message when
/// it is `auth` with a valid token; otherwise closes the socket with 4003 (another
/// message came first, or the token was refused) and returns `None`, as when the
/// sweep closed it for sending nothing within `gateway.auth_timeout_ms`. Pings before
/// it are answered and rate limited as usual.
pub async fn first_message_player(
    connection: &Connection,
    inbound: &mut Inbound,
    tokens: &TokenKeys,
) -> Option<String> {
    while until_readable(connection).await {
        for _ in 0..READ_BATCH_MESSAGES_MAX {
            let refusal = match inbound.next(connection) {
                Next::Stop => break,
                Next::Control => continue,
                Next::Refused => "the first message must be auth",
                Next::Text(text) => match protocol::decode_client_message(text.as_str()) {
                    Ok(ClientMessage::Auth { token }) => match tokens.verify(&token) {
                        Ok(player) => return Some(player),
                        Err(_) => "bad token",
                    },
                    _ => "the first message must be auth",
                },
            };
            connection.close(close_code::AUTH_FAILED, refusal);
            return None;
        }
    }
    None
}

/// Finishes a socket whose close was decided: writes our close frame (within the
/// sweep's `close_write_timeout_ms`), then drains.
pub async fn finish_close(
    shared: &GatewayShared,
    shutdown: &CancellationToken,
    connection: &Connection,
) {
    while until_readable(connection).await {}
    if !connection.is_failed() {
        drain_after_close(shared, shutdown, connection).await;
    }
}

/// Finishes the socket's queued writes as it becomes writable, until the client sent
/// something to read (true; not once a close was decided) or the socket is finished:
/// the peer is gone, or our close frame is written (false).
async fn until_readable(connection: &Connection) -> bool {
    while !connection.is_finished() {
        let has_pending = connection.has_pending();
        tokio::select! {
            biased;
            ready = connection.stream().writable(), if has_pending => match ready {
                Ok(()) => connection.flush(),
                Err(_) => connection.mark_failed(),
            },
            // Also while writes wait: the sweep aborts a socket past its close deadline.
            _ = connection.wait_for_wake() => {}
            ready = connection.stream().readable(), if !connection.is_closing() => match ready {
                Ok(()) => {
                    connection.touch_inbound();
                    return true;
                }
                Err(_) => connection.mark_failed(),
            },
        }
    }
    false
}

/// After our close frame (or our reply to the client's) is written: shuts down the
/// write side and discards input until the peer closes its side, or
/// `close_drain_bytes_max` were discarded, or the sweep's drain deadline aborts the
/// socket. A socket dropped with unread input sends RST, and a peer that gets RST may
/// lose the close frame still unread in its buffer. At shutdown only what already
/// arrived is discarded.
async fn drain_after_close(
    shared: &GatewayShared,
    shutdown: &CancellationToken,
    connection: &Connection,
) {
    connection.start_draining();
    if socket2::SockRef::from(connection.stream())
        .shutdown(Shutdown::Write)
        .is_err()
    {
        return;
    }
    let drain_bytes_max = shared.config.close_drain_bytes_max;
    let mut discarded = 0usize;
    let mut chunk = vec![0u8; DRAIN_CHUNK_BYTES];
    while discarded < drain_bytes_max {
        match connection.stream().try_read(&mut chunk) {
            Ok(0) => return,
            Ok(read) => {
                discarded += read;
                continue;
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
        if connection.is_failed() || shutdown.is_cancelled() {
            return;
        }
        tokio::select! {
            ready = connection.stream().readable() => if ready.is_err() { return },
            _ = connection.wait_for_wake() => {}
            _ = shutdown.cancelled() => {}
        }
    }
}

/// What a message asks of the gateway beyond what it answers at once.
enum Outgoing {
    /// A request to the room's engine (its `req`), answered by the engine.
    Request(String, Command),
    /// A chat message's checked text, for the room's engine.
    Chat(String),
    /// A new display name, checked and stored by the gateway.
    Rename { req: String, name: String },
}

/// Reads every complete message available now; returns what is left to do of them.
fn read_messages(connection: &Connection, inbound: &mut Inbound) -> Vec<Outgoing> {
    let mut commands = Vec::new();
    for _ in 0..READ_BATCH_MESSAGES_MAX {
        match inbound.next(connection) {
            Next::Stop => break,
            Next::Control => {}
            Next::Refused => {
                reply_error(connection, ErrorCode::RateLimited, "too many messages");
            }
            Next::Text(text) => {
                if let Some(command) = handle_text(connection, text.as_str()) {
                    commands.push(command);
                }
            }
        }
    }
    commands
}

/// Decodes one text message; answers what the gateway answers itself.
fn handle_text(connection: &Connection, text: &str) -> Option<Outgoing> {
    match protocol::decode_client_message(text) {
        Ok(ClientMessage::Ping) => {
            let pong = ServerMessage::Pong {
                server_time: crate::clock::unix_now_ms(),
            };
            send_message(connection, &pong);
            None
        }
        Ok(ClientMessage::Bet {
            req,
            amount,
            auto,
            slot,
        }) => Some(Outgoing::Request(
            req.clone(),
            Command::Bet {
                req,
                amount_minor: amount,
                auto_cashout_hundredths: auto,
                slot,
                // The socket's name is filled in when the bet is sent (`send_request`).
                name: String::new(),
            },
        )),
        Ok(ClientMessage::Cashout { req, slot }) => Some(Outgoing::Request(
            req.clone(),
            Command::Cashout { req, slot },
        )),
        Ok(ClientMessage::Cancel { req, slot }) => Some(Outgoing::Request(
            req.clone(),
            Command::Cancel { req, slot },
        )),
        Ok(ClientMessage::Chat { text }) => Some(Outgoing::Chat(text)),
        Ok(ClientMessage::Name { req, name }) => Some(Outgoing::Rename { req, name }),
        Ok(ClientMessage::Auth { .. }) => {
            reply_error(
                connection,
                ErrorCode::InvalidField,
                "auth is accepted only as the first message of a socket opened without token",
            );
            None
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
    send_message(connection, &error);
}

fn send_message(connection: &Connection, message: &ServerMessage) {
    connection.send_private(frame::text(protocol::encode(message).as_bytes()));
}

/// Forwards a request to the room's engine, recorded as in flight for its answer; a
/// connection at `requests_in_flight_max` or a bus failure is answered at once.
async fn send_request(
    shared: &GatewayShared,
    connection: &Connection,
    name: &mut SocketName,
    req: String,
    mut command: Command,
) {
    let kind = command
        .request_kind()
        .expect("players' requests have a kind");
    let request = RequestId {
        kind,
        req: req.clone(),
    };
    let now = tokio::time::Instant::now();
    let requests = &shared.requests;
    if let Err(full) = requests.begin(connection.id, connection.player(), request.clone(), now) {
        let message = format!("{full}; wait for one before sending more");
        refuse_command(connection, kind, req, ErrorCode::Overloaded, message);
        return;
    }
    if let Command::Bet { name: bet_name, .. } = &mut command {
        *bet_name = name.current(shared, connection).await;
    }
    let Err((code, message)) = forward(shared, connection, command).await else {
        if kind == RequestKind::Bet {
            shared.traffic.bet_forwarded();
        }
        return;
    };
    // Answered here: the engine never saw it.
    requests.finish(connection.id, &request);
    refuse_command(connection, kind, req, code, message);
}

/// Forwards a chat message to the room's engine, which posts it to the room or tells the
/// player it is over its rate; a muted player is answered here.
async fn send_chat(
    shared: &GatewayShared,
    connection: &Connection,
    name: &mut SocketName,
    text: String,
) {
    if shared.limits.is_muted(connection.player()) {
        let message = "an operator muted you: your messages are not posted";
        reply_error(connection, ErrorCode::Muted, message);
        return;
    }
    let name = name.current(shared, connection).await;
    if let Err((code, message)) = forward(shared, connection, Command::Chat { name, text }).await {
        reply_error(connection, code, &message);
    }
}

/// Sends `command` to the room's engine; the error to answer when the bus did not take it.
async fn forward(
    shared: &GatewayShared,
    connection: &Connection,
    command: Command,
) -> Result<(), (ErrorCode, String)> {
    let envelope = CommandEnvelope {
        room: connection.room.clone(),
        from: ReplyTo {
            gateway: shared.id.clone(),
            connection: connection.id,
            player: connection.player().to_owned(),
        },
        command,
    };
    shared
        .bus
        .send_command(envelope)
        .await
        .map_err(|error| match error {
            BusError::QueueFull { .. } => (
                ErrorCode::Overloaded,
                "the engine is busy; retry".to_owned(),
            ),
            other => (ErrorCode::Internal, other.to_string()),
        })
}

fn refuse_command(
    connection: &Connection,
    kind: RequestKind,
    req: String,
    code: ErrorCode,
    message: String,
) {
    send_message(
        connection,
        &ServerMessage::refusal(kind, req, code, message),
    );
}
