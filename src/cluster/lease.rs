//! Room leases: which engine of a cluster leads which room, and the fencing token it
//! leads with.
//!
//! Owns one Redis key per room: `{p}:lease:{room}`, set with a TTL
//! (`cluster.lease_ttl_ms`) only when absent (the `SET NX PX` of the classic lock) and
//! renewed by its holder. It holds `"<engine id>"` from the grant until the holder has its
//! fencing token, then `"<engine id> <token>"`.
//!
//! Redis alone cannot stop a deposed leader (paused by GC, cut off, its lease expired
//! unnoticed) from acting, and it cannot count tokens either: a Redis restarted without
//! persistence forgets every key. So the token does not come from Redis. The engine that
//! won a lease ([`Leases::try_acquire`]) takes the next token of the room from the ledger
//! ([`crate::ledger::Ledger::acquire_fence`], which raises the ledger's fence to it in the
//! same step), records it in the lease ([`Leases::confirm`]) and passes it with every
//! ledger write ([`crate::ledger::Fence`]); the ledger refuses any lower token. Tokens
//! therefore only ever grow, whatever happens to Redis, and nothing a predecessor writes
//! after its successor took its token lands.
//!
//! A holder keeps the lease with [`keep`]: it renews every `lease_renew_interval_ms` and
//! declares the lease lost when Redis names another holder (or none: Redis restarted or
//! the lease expired), or when a renewal has not succeeded for long enough that Redis may
//! have expired it.

use std::time::{Duration, Instant};

use redis::Script;
use tokio_util::sync::CancellationToken;

use crate::bus::BusError;
use crate::bus::redis::{Connection, RedisBus, key};

/// Records the token of a grant: `"<id>"` becomes `"<id> <token>"` with a fresh TTL,
/// if the lease is still the grant's. Returns 1 if recorded.
const CONFIRM_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
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

/// The lease keys of one engine process.
pub struct Leases {
    connection: Connection,
    key_prefix: String,
    engine_id: String,
    ttl_ms: u64,
}

/// A lease won on one room whose fencing token is not known yet: its holder takes one
/// from the ledger, then [`Leases::confirm`]s it, or [`Leases::release`]s the grant.
pub struct LeaseGrant {
    key: String,
}

/// A lease held on one room, with its fencing token.
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

    /// Takes the lease of `room` if nobody holds it.
    pub async fn try_acquire(&self, room: &str) -> Result<Option<LeaseGrant>, BusError> {
        let key = self.lease_key(room);
        let granted: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(&self.engine_id)
            .arg("NX")
            .arg("PX")
            .arg(self.ttl_ms)
            .query_async(&mut self.connection.clone())
            .await?;
        Ok(granted.map(|_| LeaseGrant { key }))
    }

    /// Records `token` (from [`crate::ledger::Ledger::acquire_fence`]) in the lease of
    /// `grant`, renewing it; None when the grant expired meanwhile (another engine may
    /// lead now, with a higher token: this one must not lead).
    pub async fn confirm(
        &self,
        grant: LeaseGrant,
        token: u64,
    ) -> Result<Option<RoomLease>, BusError> {
        let confirmed: i64 = Script::new(CONFIRM_LUA)
            .key(&grant.key)
            .arg(&self.engine_id)
            .arg(token)
            .arg(self.ttl_ms)
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok((confirmed == 1).then(|| RoomLease {
            key: grant.key,
            value: format!("{} {token}", self.engine_id),
            token,
        }))
    }

    /// Gives up a grant that got no token (the ledger failed), if it is still ours.
    pub async fn release_grant(&self, grant: LeaseGrant) -> Result<(), BusError> {
        self.release_value(&grant.key, &self.engine_id).await
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
        self.release_value(&lease.key, &lease.value).await
    }

    async fn release_value(&self, key: &str, value: &str) -> Result<(), BusError> {
        let _: i64 = Script::new(RELEASE_LUA)
            .key(key)
            .arg(value)
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

    /// `"<engine id> <token>"` of the room's leader (`"<engine id>"` while it takes its
    /// token), if any.
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
