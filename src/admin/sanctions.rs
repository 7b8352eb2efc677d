//! Kicks and bans: what an operator does to a player, stored (bans, with their audit
//! entry) and sent to every gateway on the bus as a [`PlayerControl`], each of which
//! closes the player's sockets it holds and keeps its set of banned players current.
//!
//! The ban is written to the ledger before any gateway hears of it: a gateway that starts
//! meanwhile subscribes to its replies before it reads the bans, so it learns of the ban
//! one way or the other.

use bytes::Bytes;
use serde::Serialize;
use serde_json::json;

use crate::admission::bans::Bans;
use crate::bus::{Bus, PlayerControl, ReplyEnvelope, ReplyTo};
use crate::ledger::{AuditAction, AuditEntry, BanChange, Ledger};

use super::AdminError;

/// What a kick, ban or unban did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SanctionOutcome {
    pub player: String,
    /// Whether the player is banned now.
    pub banned: bool,
    /// Whether the player was banned before.
    pub was_banned: bool,
    /// The gateways told (each closes the player's sockets it holds).
    pub gateways: usize,
}

/// Closes every socket of `player` on every gateway (close code 4004) and audits it.
pub async fn kick_player(
    bus: &dyn Bus,
    ledger: &dyn Ledger,
    bans: &Bans,
    player: &str,
    operator: &str,
) -> Result<SanctionOutcome, AdminError> {
    let gateways = tell_every_gateway(bus, player, PlayerControl::Kick).await?;
    let banned = bans.contains(player);
    let entry = AuditEntry {
        at_ms: crate::clock::unix_now_ms(),
        operator: operator.to_owned(),
        action: AuditAction::KickPlayer,
        target: player.to_owned(),
        before: json!({ "banned": banned }),
        after: json!({ "banned": banned, "gateways_told": gateways }),
    };
    super::record_action(ledger, &entry).await?;
    Ok(SanctionOutcome {
        player: player.to_owned(),
        banned,
        was_banned: banned,
        gateways,
    })
}

/// Bans `player` (`banned`) or lifts the ban: stored with its audit entry, then told to
/// every gateway; a ban closes the player's sockets (close code 4005). This gateway's
/// set changes at once, whatever the bus does.
pub async fn set_ban(
    bus: &dyn Bus,
    ledger: &dyn Ledger,
    bans: &Bans,
    player: &str,
    operator: &str,
    banned: bool,
) -> Result<SanctionOutcome, AdminError> {
    if banned {
        bans.room_for_one_more()?;
    }
    let change = BanChange {
        player: player.to_owned(),
        operator: operator.to_owned(),
        at_ms: crate::clock::unix_now_ms(),
        banned,
    };
    let was_banned = ledger.write_ban(&change).await?;
    let control = if banned {
        // Checked above; a race past the bound leaves this gateway's set at the bound.
        let _ = bans.insert(player);
        PlayerControl::Ban
    } else {
        bans.remove(player);
        PlayerControl::Unban
    };
    let gateways = tell_every_gateway(bus, player, control).await?;
    Ok(SanctionOutcome {
        player: player.to_owned(),
        banned,
        was_banned,
        gateways,
    })
}

/// Sends `control` of `player` to every gateway with an open reply channel; how many
/// took it. A gateway gone since the listing is no error.
async fn tell_every_gateway(
    bus: &dyn Bus,
    player: &str,
    control: PlayerControl,
) -> Result<usize, AdminError> {
    let mut told = 0;
    for gateway in bus.gateways().await? {
        let reply = ReplyEnvelope {
            to: ReplyTo {
                gateway,
                ..ReplyTo::every_socket_of(player)
            },
            answers: None,
            control: Some(control),
            json: Bytes::new(),
        };
        match bus.send_reply(reply).await {
            Ok(()) => told += 1,
            Err(error) => tracing::warn!(player, ?control, %error, "a gateway was not told"),
        }
    }
    Ok(told)
}
