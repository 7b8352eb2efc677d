//! One hostile client must not hurt anyone: floods of control frames and messages from
//! clients that never read are closed, and a closing socket is dropped in bounded time.
//! Every test here talks to a real server over real sockets.

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::TestApp;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// Longest a test waits for the server to drop a hostile socket.
const DROP_WAIT_MS: u64 = 20_000;

/// A raw client that completes the `/ws` handshake; the server's bytes after the 101
/// response head are left unread.
async fn raw_upgrade(addr: SocketAddr, token: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /ws?token={token} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    stream
}

/// A masked client frame (RFC 6455 §5.3) with the all-zero masking key, so the payload
/// goes as is. `payload` is at most 125 bytes.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() <= 125);
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    frame
}

/// Writes `batch` again and again without ever reading; returns the write error that
/// tells the server dropped the socket, or panics if it is still open after
/// `DROP_WAIT_MS`.
async fn flood_until_dropped(stream: &mut TcpStream, batch: &[u8]) -> std::io::Error {
    let flood = async {
        loop {
            if let Err(error) = stream.write_all(batch).await {
                return error;
            }
        }
    };
    tokio::time::timeout(Duration::from_millis(DROP_WAIT_MS), flood)
        .await
        .expect("the server drops a socket that floods and never reads")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_that_never_reads_is_closed() {
    let mut app = TestApp::start().await;
    let (token, ..) = app.guest().await;
    let mut stream = raw_upgrade(app.addr, &token).await;
    let pings = client_frame(0x9, b"").repeat(1024);
    let error = flood_until_dropped(&mut stream, &pings).await;
    assert!(
        matches!(
            error.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{error}"
    );
    // The others are still served.
    let (mut socket, ..) = app.player().await;
    crate::common::send(&mut socket, serde_json::json!({"t": "ping"})).await;
    crate::common::next_matching(&mut socket, |v| v["t"] == "pong").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closing_socket_that_never_reads_is_dropped_at_the_close_write_deadline() {
    // No rate limit to speak of: the JSON pings' pong replies fill the kernel buffers of
    // a client that never reads, its queue overflows (4001) and the close frame can
    // never be written.
    let mut app = TestApp::start_with(|config| {
        config.gateway.inbound_messages_per_second_max = 1_000_000;
        config.gateway.inbound_messages_burst_max = 1_000_000;
        config.gateway.close_write_timeout_ms = 500;
    })
    .await;
    let (token, ..) = app.guest().await;
    let mut stream = raw_upgrade(app.addr, &token).await;
    let pings = client_frame(0x1, br#"{"t":"ping"}"#).repeat(1024);
    flood_until_dropped(&mut stream, &pings).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_past_the_rate_limit_then_reading_gets_the_1008_close_frame() {
    let mut app = TestApp::start().await;
    let (mut socket, ..) = app.player().await;
    // As a `websockets` client that sends 5,000 JSON pings before reading anything.
    for _ in 0..5_000 {
        socket.feed(Message::text(r#"{"t":"ping"}"#)).await.unwrap();
    }
    socket.flush().await.unwrap();
    let close = loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame in time");
        match message {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            Some(Err(error)) => panic!("socket error instead of the close frame: {error}"),
            None => panic!("closed without a close frame"),
        }
    };
    let close = close.expect("a close code");
    assert_eq!(u16::from(close.code), 1008, "{close:?}");
    app.stop().await;
}
