//! Where the load goes and where it comes from: the server's address, taken from
//! `--url` and accepted only on loopback (127.0.0.0/8, the tool is for local load tests),
//! and the loopback source addresses the bots' sockets are bound to, so that more bots
//! than one address has ephemeral ports can connect.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use anyhow::{Context, bail, ensure};

/// Bots per source address: stays under the ~28k ephemeral ports Linux gives an
/// address by default, leaving room for the final reconnections.
pub const PLAYERS_PER_SOURCE_ADDR_MAX: u64 = 20_000;

/// Longest room name accepted, in bytes.
const ROOM_NAME_BYTES_MAX: usize = 64;

/// The server address of a `ws://HOST[:PORT][/ws]` URL; HOST must be in 127.0.0.0/8 or
/// be `localhost`.
pub fn parse_ws_url(url: &str) -> anyhow::Result<SocketAddr> {
    let uri: hyper::Uri = url
        .parse()
        .with_context(|| format!("--url {url:?} is not a URL"))?;
    ensure!(
        uri.scheme_str() == Some("ws"),
        "--url must start with ws:// (plain WebSocket on loopback), got {url:?}"
    );
    let host = uri.host().context("--url has no host")?;
    let ip = if host.eq_ignore_ascii_case("localhost") {
        Ipv4Addr::LOCALHOST
    } else {
        host.parse::<Ipv4Addr>()
            .ok()
            .filter(Ipv4Addr::is_loopback)
            .with_context(|| {
                format!("--url host {host:?} refused: only 127.0.0.0/8 targets are load-tested by this tool")
            })?
    };
    ensure!(
        matches!(uri.path(), "" | "/" | "/ws"),
        "--url path must be empty or /ws, got {:?}",
        uri.path()
    );
    Ok(SocketAddr::V4(SocketAddrV4::new(
        ip,
        uri.port_u16().unwrap_or(80),
    )))
}

/// The source addresses for `players` bots: the given ones (each on loopback), or
/// 127.0.0.1 ..= 127.0.0.k with k = ceil(players / PLAYERS_PER_SOURCE_ADDR_MAX).
pub fn source_addrs(given: &[Ipv4Addr], players: u64) -> anyhow::Result<Vec<Ipv4Addr>> {
    let needed = players.div_ceil(PLAYERS_PER_SOURCE_ADDR_MAX).max(1);
    if given.is_empty() {
        ensure!(
            needed < 255,
            "{players} players need more than 254 source addresses"
        );
        let count = u8::try_from(needed).expect("checked below 255");
        return Ok((1..=count)
            .map(|last| Ipv4Addr::new(127, 0, 0, last))
            .collect());
    }
    if let Some(foreign) = given.iter().find(|addr| !addr.is_loopback()) {
        bail!("--source-addrs {foreign} refused: only 127.0.0.0/8 sources are used");
    }
    ensure!(
        given.len() as u64 >= needed,
        "{players} players need at least {needed} source addresses \
         ({PLAYERS_PER_SOURCE_ADDR_MAX} bots each), got {}",
        given.len()
    );
    Ok(given.to_vec())
}

/// A room name goes into the `/ws` query string unescaped, so it must be plain.
pub fn check_room(room: &str) -> anyhow::Result<()> {
    ensure!(
        !room.is_empty()
            && room.len() <= ROOM_NAME_BYTES_MAX
            && room
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'),
        "--room must be 1 to {ROOM_NAME_BYTES_MAX} characters of A-Z, a-z, 0-9, '-' or '_'"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        assert_eq!(
            parse_ws_url("ws://127.0.0.1:18090").unwrap(),
            "127.0.0.1:18090".parse().unwrap()
        );
        assert_eq!(
            parse_ws_url("ws://127.3.2.1:9/ws").unwrap(),
            "127.3.2.1:9".parse().unwrap()
        );
        assert_eq!(
            parse_ws_url("ws://localhost").unwrap(),
            "127.0.0.1:80".parse().unwrap()
        );
        for refused in [
            "ws://10.0.0.1:8080",
            "ws://example.com:8080",
            "wss://127.0.0.1:8080",
            "http://127.0.0.1:8080",
            "ws://127.0.0.1:8080/other",
        ] {
            assert!(parse_ws_url(refused).is_err(), "{refused} accepted");
        }
        let message = parse_ws_url("ws://192.168.1.5:80").unwrap_err().to_string();
        assert!(message.contains("only 127.0.0.0/8"), "{message}");
    }

    #[test]
    fn source_addresses_spread_by_twenty_thousand() {
        assert_eq!(
            source_addrs(&[], 200).unwrap(),
            vec![Ipv4Addr::new(127, 0, 0, 1)]
        );
        let spread = source_addrs(&[], 200_000).unwrap();
        assert_eq!(spread.len(), 10);
        assert_eq!(spread[9], Ipv4Addr::new(127, 0, 0, 10));
        assert_eq!(source_addrs(&[], 20_001).unwrap().len(), 2);
        let given = [Ipv4Addr::new(127, 0, 0, 5)];
        assert_eq!(source_addrs(&given, 100).unwrap(), given.to_vec());
        assert!(source_addrs(&given, 30_000).is_err());
        assert!(source_addrs(&[Ipv4Addr::new(10, 0, 0, 1)], 1).is_err());
    }

    #[test]
    fn room_names_are_plain() {
        assert!(check_room("main").is_ok());
        assert!(check_room("vip-2_a").is_ok());
        assert!(check_room("").is_err());
        assert!(check_room("a&token=x").is_err());
    }
}
