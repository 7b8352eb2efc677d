//! Kicks, bans and mutes: what an operator does to a player, stored (bans and mutes, the
//! [`Restriction`]s, with their audit entry) and sent to every gateway on the bus as a
//! [`PlayerControl`], each of which keeps its sets of banned and muted players current
//! and closes the player's sockets it holds on a kick or ban (a mute keeps them open).
//!
//! A restriction is written to the ledger before any gateway hears of it: a gateway that
//! starts meanwhile subscribes to its replies before it reads the restricted players, so
//! it learns of the change one way or the other.

use bytes::Bytes;
use serde::Serialize;
use serde_json::json;

use crate::admission::ConnectionLimits;
use crate::bus::{Bus, PlayerControl, ReplyEnvelope, ReplyTo};
use crate::ledger::{AuditAction, AuditEntry, Ledger, Restriction, RestrictionChange};

use super::AdminError;

/// What a kick, ban, unban, mute or unmute did: the player's restrictions after it and
/// before it, as this gateway holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SanctionOutcome {
    pub player: String,
    /// Whether the player is banned now.
    pub banned: bool,
    /// Whether the player was banned before.
    pub was_banned: bool,
    /// Whether the player is muted now.
    pub muted: bool,
    /// Whether the player was muted before.
    pub was_muted: bool,
    /// The gateways told (each closes the player's sockets it holds on a kick or ban).
    pub gateways: usize,
}

impl SanctionOutcome {
    /// The outcome of a change of `changed` (from `was` to `now`, as the ledger answered)
    /// or of none (a kick): the restriction not changed as `limits` holds it.
    fn of(
        limits: &ConnectionLimits,
        player: &str,
        changed: Option<(Restriction, bool, bool)>,
        gateways: usize,
    ) -> SanctionOutcome {
        let state = |restriction: Restriction| match changed {
            Some((changed, was, now)) if changed == restriction => (was, now),
            _ => {
                let held = limits.restricted(restriction).contains(player);
                (held, held)
            }
        };
        let ((was_banned, banned), (was_muted, muted)) =
            (state(Restriction::Ban), state(Restriction::Mute));
        SanctionOutcome {
            player: player.to_owned(),
            banned,
            was_banned,
            muted,
            was_muted,
            gateways,
        }
    }
}

/// Closes every socket of `player` on every gateway (close code 4004) and audits it.
pub async fn kick_player(
    bus: &dyn Bus,
    ledger: &dyn Ledger,
    limits: &ConnectionLimits,
    player: &str,
    operator: &str,
) -> Result<SanctionOutcome, AdminError> {
    let gateways = tell_every_gateway(bus, player, PlayerControl::Kick).await?;
    let banned = limits.bans.contains(player);
    let entry = AuditEntry {
        at_ms: crate::clock::unix_now_ms(),
        operator: operator.to_owned(),
        action: AuditAction::KickPlayer,
        target: player.to_owned(),
        before: json!({ "banned": banned }),
        after: json!({ "banned": banned, "gateways_told": gateways }),
    };
    super::record_action(ledger, &entry).await?;
    Ok(SanctionOutcome::of(limits, player, None, gateways))
}

/// Imposes `restriction` on `player` (`restricted`) or lifts it: stored with its audit
/// entry, then told to every gateway; a ban closes the player's sockets (close code
/// 4005), a mute refuses its chat. This gateway's set changes at once, whatever the bus
/// does.
pub async fn set_restriction(
    bus: &dyn Bus,
    ledger: &dyn Ledger,
    limits: &ConnectionLimits,
    (player, operator): (&str, &str),
    (restriction, restricted): (Restriction, bool),
) -> Result<SanctionOutcome, AdminError> {
    let players = limits.restricted(restriction);
    if restricted {
        players.room_for_one_more()?;
    }
    let change = RestrictionChange {
        restriction,
        player: player.to_owned(),
        operator: operator.to_owned(),
        at_ms: crate::clock::unix_now_ms(),
        restricted,
    };
    let was_restricted = ledger.write_restriction(&change).await?;
    if restricted {
        // Checked above; a race past the bound leaves this gateway's set at the bound.
        let _ = players.insert(player);
    } else {
        players.remove(player);
    }
    let control = PlayerControl::of_restriction(restriction, restricted);
    let gateways = tell_every_gateway(bus, player, control).await?;
    let changed = Some((restriction, was_restricted, restricted));
    Ok(SanctionOutcome::of(limits, player, changed, gateways))
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
