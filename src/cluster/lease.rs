//! Room leases: which engine of a cluster leads which room, and its fencing token.
//!
//! Owns two Redis keys per room, in the room's hash slot:
//! - `{p}:lease:{room}` — `"<engine id> <token>"`, set with a TTL (`cluster.lease_ttl_ms`)
//!   only when absent (the `SET NX PX` of the classic lock) and renewed by its holder;
//! - `{p}:fence:{room}` — the room's fencing-token counter, incremented at each grant, so
//!   every leader of a room has a strictly larger token than the one before.
//!
//! Redis alone cannot stop a deposed leader (paused by GC, cut off, its lease expired
//! unnoticed) from acting. The token closes that hole where it matters: the engine passes
//! it with every ledger write ([`crate::ledger::Fence`]) and the ledger refuses a token
//! below the highest it has seen for the room. A new leader raises the ledger's fence
//! before reading the room's state, so nothing its predecessor writes afterwards lands.
//!
//! If Redis lost the counter (restarted without persistence), a new grant's token may be
//! below the ledger's; the ledger then answers `Fenced { current }` and the engine lifts
//! the counter past `current` ([`Leases::raise_counter`]) and asks again.
//!
//! A holder keeps the lease with [`keep`]: it renews every `lease_renew_interval_ms` and
//! declares the lease lost when Redis names another holder, or when a renewal has not
//! succeeded for long enough that Redis may have expired it.

use std::time::{Duration, Instant};

use redis::Script;
use tokio_util::sync::CancellationToken;

use crate::bus::BusError;
use crate::bus::redis::{Connection, RedisBus, key};

/// Grants the lease when nobody holds it: increments the fencing counter and stores
/// `"<id> <token>"` with the TTL. Returns the token, or 0 when the lease is taken.
const ACQUIRE_LUA: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. token, 'NX', 'PX', ARGV[2])
return token
";

/// Extends the lease if its value is still ours. Returns 1 if renewed.
const RENEW_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Deletes the lease if its value is still ours.
const RELEASE_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Records ARGV[1] alive until ARGV[2] (unix ms), forgets engines dead before ARGV[3]
/// and returns how many are alive.
const HEARTBEAT_LUA: &str = r"
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
return redis.call('ZCARD', KEYS[1])
";

/// Lifts the fencing counter to at least ARGV[1].
const RAISE_COUNTER_LUA: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 1
";

/// The lease keys of one engine process.
pub struct Leases {
    connection: Connection,
    key_prefix: String,
    engine_id: String,
    ttl_ms: u64,
}

/// A lease held on one room.
pub struct RoomLease {
    key: String,
    /// `"<engine id> <token>"`: what the key holds while the lease is ours.
    value: String,
    token: u64,
}

impl RoomLease {
    /// The fencing token of this grant.
    pub fn token(&self) -> u64 {
        self.token
    }
}

impl Leases {
    /// Leases of `engine_id` on the Redis of `bus`, with keys under its prefix.
    pub fn new(bus: &RedisBus, engine_id: String, ttl_ms: u64) -> Leases {
        assert!(ttl_ms > 0);
        assert!(
            !engine_id.contains(' '),
            "the id and token are space-separated"
        );
        let (connection, key_prefix) = bus.connection();
        Leases {
            connection,
            key_prefix,
            engine_id,
            ttl_ms,
        }
    }

    fn lease_key(&self, room: &str) -> String {
        key(&self.key_prefix, "lease", room)
    }

    fn fence_key(&self, room: &str) -> String {
        key(&self.key_prefix, "fence", room)
    }

    /// Takes the lease of `room` if nobody holds it.
    pub async fn try_acquire(&self, room: &str) -> Result<Option<RoomLease>, BusError> {
        let key = self.lease_key(room);
        let token: u64 = Script::new(ACQUIRE_LUA)
            .key(&key)
            .key(self.fence_key(room))
            .arg(&self.engine_id)
            .arg(self.ttl_ms)
            .invoke_async(&mut self.connection.clone())
            .await?;
        if token == 0 {
            return Ok(None);
        }
        Ok(Some(RoomLease {
            key,
            value: format!("{} {token}", self.engine_id),
            token,
        }))
    }

    /// Extends `lease`; false when Redis no longer holds it for us (expired, or taken).
    pub async fn renew(&self, lease: &RoomLease) -> Result<bool, BusError> {
        let renewed: i64 = Script::new(RENEW_LUA)
            .key(&lease.key)
            .arg(&lease.value)
            .arg(self.ttl_ms)
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(renewed == 1)
    }

    /// Gives `lease` up at once (handover at shutdown), if it is still ours.
    pub async fn release(&self, lease: &RoomLease) -> Result<(), BusError> {
        let _: i64 = Script::new(RELEASE_LUA)
            .key(&lease.key)
            .arg(&lease.value)
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(())
    }

    /// Lifts the fencing counter of `room` to at least `token` (the ledger has seen it).
    pub async fn raise_counter(&self, room: &str, token: u64) -> Result<(), BusError> {
        let _: i64 = Script::new(RAISE_COUNTER_LUA)
            .key(self.fence_key(room))
            .arg(token)
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(())
    }

    /// Records this engine as alive for one TTL and returns how many engines are (so
    /// that each takes its share of the rooms). `{p}:engines` is a sorted set of engine
    /// ids by the unix ms their liveness ends.
    pub async fn heartbeat(&self, now_unix_ms: u64) -> Result<u64, BusError> {
        let alive: u64 = Script::new(HEARTBEAT_LUA)
            .key(format!("{}:engines", self.key_prefix))
            .arg(&self.engine_id)
            .arg(now_unix_ms + self.ttl_ms)
            .arg(now_unix_ms)
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(alive)
    }

    /// `"<engine id> <token>"` of the room's leader, if any.
    pub async fn holder(&self, room: &str) -> Result<Option<String>, BusError> {
        let holder: Option<String> = redis::cmd("GET")
            .arg(self.lease_key(room))
            .query_async(&mut self.connection.clone())
            .await?;
        Ok(holder)
    }
}

/// Keeps `lease` until `stop` is cancelled (then releases it) or the lease is lost (then
/// cancels `lost`). A renewal sent at `t` that succeeds keeps the lease ours until
/// `t + ttl` on Redis's side, so the local deadline is counted from the send, and the
/// lease is given up `renew_interval_ms` before it, leaving a margin for clock rates.
pub async fn keep(
    leases: &Leases,
    lease: &RoomLease,
    renew_interval_ms: u64,
    stop: &CancellationToken,
    lost: &CancellationToken,
) {
    assert!(renew_interval_ms.saturating_mul(2) <= leases.ttl_ms);
    let granted_within = Duration::from_millis(leases.ttl_ms - renew_interval_ms);
    let mut valid_until = Instant::now() + granted_within;
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                if let Err(error) = leases.release(lease).await {
                    tracing::warn!(%error, key = %lease.key, "lease not released; it expires by itself");
                }
                return;
            }
            () = tokio::time::sleep(Duration::from_millis(renew_interval_ms)) => {}
        }
        let sent_at = Instant::now();
        let renewal = tokio::time::timeout(
            valid_until.saturating_duration_since(sent_at),
            leases.renew(lease),
        )
        .await;
        match renewal {
            Ok(Ok(true)) => valid_until = sent_at + granted_within,
            Ok(Ok(false)) => {
                tracing::warn!(key = %lease.key, "lease taken by another engine");
                lost.cancel();
                return;
            }
            Ok(Err(error)) => tracing::warn!(%error, key = %lease.key, "lease renewal failed"),
            Err(_elapsed) => {}
        }
        if Instant::now() >= valid_until {
            tracing::warn!(key = %lease.key, "lease not renewed in time; giving the room up");
            lost.cancel();
            return;
        }
    }
}
