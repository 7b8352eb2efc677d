//! The command streams: gateway → the engine leading a room, at-least-once and in order.
//! Owns the consumer group `engines` (created from the stream's start, created again
//! when Redis lost it: NOGROUP), the reader task per led room (its own pending entries,
//! then claims of entries other consumers left idle, then new ones), the engine's side
//! of the stream, and the acknowledgements (XACK + XDEL) of what the engine handled.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, RedisResult};
use tokio::sync::mpsc;

use super::RedisBus;
use super::connection::Connection;
use super::encoding::decode_command_entry;
use crate::bus::{BusError, CommandEnvelope};

/// The consumer group of every room's command stream.
pub(super) const CONSUMER_GROUP: &str = "engines";
/// Commands read from Redis per XREADGROUP or XAUTOCLAIM.
const COMMAND_READ_BATCH_COMMANDS: usize = 64;
/// Commands read but not yet taken by the engine, per room.
const COMMAND_HANDOFF_COMMANDS_MAX: usize = 2 * COMMAND_READ_BATCH_COMMANDS;
/// Taken commands waiting to be acknowledged, per room.
const COMMAND_ACK_QUEUE_IDS_MAX: usize = 256;
/// Acknowledgements sent in one XACK.
const COMMAND_ACK_BATCH_IDS_MAX: usize = 64;
/// Longest XREADGROUP wait: bounds how late a dropped command stream stops its reader.
const COMMAND_READ_BLOCK_MS: u64 = 1_000;
/// Claim passes per `command_claim_idle_ms`.
const COMMAND_CLAIM_PASSES_PER_IDLE: u64 = 2;
/// Pause after a failed read before the next try.
const REDIS_RETRY_DELAY_MS: u64 = 200;
/// Extra response time a blocking read gets beyond its BLOCK.
const BLOCKING_RESPONSE_MARGIN_MS: u64 = 2_000;

const _: () = assert!(COMMAND_HANDOFF_COMMANDS_MAX >= COMMAND_READ_BATCH_COMMANDS);
const _: () = assert!(COMMAND_ACK_QUEUE_IDS_MAX >= COMMAND_ACK_BATCH_IDS_MAX);

/// Appends a command unless the room's stream is full: checked and written atomically,
/// so concurrent gateways cannot overshoot the bound.
pub(super) const SEND_COMMAND_LUA: &str = r"
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('XADD', KEYS[1], '*', 'command', ARGV[2])
return 1
";

/// The commands of a room the engine has taken but not yet reported handled.
pub(super) struct TakenCommands {
    ids: Vec<String>,
    acks: mpsc::Sender<String>,
}

impl RedisBus {
    pub(super) async fn start_command_tasks(
        &self,
        room: &str,
    ) -> Result<BoxStream<'static, CommandEnvelope>, BusError> {
        let key = self.key("commands", room);
        create_consumer_group(&mut self.connection.clone(), &key).await?;
        let claim_pass_ms =
            (self.options.command_claim_idle_ms / COMMAND_CLAIM_PASSES_PER_IDLE).max(1);
        let block_ms = COMMAND_READ_BLOCK_MS.min(claim_pass_ms);
        let reader_connection = self
            .target
            .connect(
                None,
                Some(Duration::from_millis(
                    block_ms + BLOCKING_RESPONSE_MARGIN_MS,
                )),
            )
            .await?;
        let (items, items_receiver) = mpsc::channel(COMMAND_HANDOFF_COMMANDS_MAX);
        let (acks, acks_receiver) = mpsc::channel(COMMAND_ACK_QUEUE_IDS_MAX);
        tokio::spawn(acknowledge_commands(
            self.connection.clone(),
            key.clone(),
            acks_receiver,
        ));
        let reader = CommandReader {
            connection: reader_connection,
            key,
            consumer: self.options.consumer_name.clone(),
            claim_idle_ms: self.options.command_claim_idle_ms,
            claim_pass_ms,
            block_ms,
            own_pending_after: Some("0".to_owned()),
            claim_cursor: "0-0".to_owned(),
            next_claim_pass: Instant::now(),
        };
        tokio::spawn(reader.run(items, acks.clone()));
        let taken = TakenCommands {
            ids: Vec::new(),
            acks,
        };
        let mut taken_by_room = self.taken_commands.lock().expect("bus lock poisoned");
        taken_by_room.insert(room.to_owned(), taken);
        let release = CommandsRelease {
            room: room.to_owned(),
            consumed: self.consumed.clone(),
            taken_commands: self.taken_commands.clone(),
        };
        Ok(engine_side(items_receiver, release))
    }

    /// Appends `command` to its room's stream unless the stream is full.
    pub(super) async fn append_command(&self, command: CommandEnvelope) -> Result<(), BusError> {
        let json = serde_json::to_string(&command).expect("a command serializes to JSON");
        let appended: u8 = self
            .send_command_script
            .key(self.key("commands", &command.room))
            .arg(self.options.command_stream_commands_max)
            .arg(json)
            .invoke_async(&mut self.connection.clone())
            .await?;
        match appended {
            1 => Ok(()),
            _ => Err(BusError::QueueFull { queue: "command" }),
        }
    }

    /// Hands the commands of `room` the engine has taken to the acknowledging task.
    pub(super) async fn acknowledge_taken(&self, room: &str) {
        let (ids, acks) = {
            let mut taken_by_room = self.taken_commands.lock().expect("bus lock poisoned");
            let Some(taken) = taken_by_room.get_mut(room) else {
                return;
            };
            (std::mem::take(&mut taken.ids), taken.acks.clone())
        };
        for id in ids {
            // The acknowledging task lives while the room's stream does; once it is gone,
            // an unacknowledged command is redelivered, which is harmless.
            let _ = acks.send(id).await;
        }
    }
}

/// Creates the room's consumer group from the start of the stream (commands sent before
/// any engine ran are kept for it); an existing group is left as it is.
pub(super) async fn create_consumer_group(
    connection: &mut Connection,
    key: &str,
) -> Result<(), BusError> {
    let created: RedisResult<()> = connection
        .xgroup_create_mkstream(key, CONSUMER_GROUP, "0")
        .await;
    match created {
        Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
        other => Ok(other?),
    }
}

/// Ends a room's command stream in this process when the engine drops it (a handover):
/// the room may be taken again later, and what was taken but not handled is left
/// unacknowledged, for the next leader (or this process's next reader) to claim.
struct CommandsRelease {
    room: String,
    consumed: Arc<SyncMutex<HashSet<String>>>,
    taken_commands: Arc<SyncMutex<HashMap<String, TakenCommands>>>,
}

impl Drop for CommandsRelease {
    fn drop(&mut self) {
        if let Ok(mut taken) = self.taken_commands.lock() {
            taken.remove(&self.room);
        }
        if let Ok(mut consumed) = self.consumed.lock() {
            consumed.remove(&format!("commands:{}", self.room));
        }
    }
}

/// The engine's side of a room's commands: each one taken is noted for
/// [`Bus::commands_handled`].
fn engine_side(
    items: mpsc::Receiver<(String, CommandEnvelope)>,
    release: CommandsRelease,
) -> BoxStream<'static, CommandEnvelope> {
    stream::unfold((items, release), |(mut items, release)| async move {
        let (id, command) = items.recv().await?;
        if let Some(taken) = release
            .taken_commands
            .lock()
            .expect("bus lock poisoned")
            .get_mut(&release.room)
        {
            taken.ids.push(id);
        }
        Some((command, (items, release)))
    })
    .boxed()
}

/// Acknowledges and deletes taken commands, in batches, until the room's stream and
/// reader are gone. A failed acknowledgement means a redelivery, which is harmless.
async fn acknowledge_commands(
    mut connection: Connection,
    key: String,
    mut acks: mpsc::Receiver<String>,
) {
    let mut ids = Vec::with_capacity(COMMAND_ACK_BATCH_IDS_MAX);
    while acks.recv_many(&mut ids, COMMAND_ACK_BATCH_IDS_MAX).await > 0 {
        let mut pipeline = redis::pipe();
        pipeline
            .atomic()
            .xack(&key, CONSUMER_GROUP, &ids)
            .ignore()
            .xdel(&key, &ids)
            .ignore();
        if let Err(error) = pipeline.exec_async(&mut connection).await {
            tracing::warn!(key, %error, "acknowledging commands failed; they will be redelivered");
        }
        ids.clear();
    }
}

/// Reads a room's commands for one consumer: its own pending entries first, then, in
/// turn, claims of entries other consumers left idle and new entries.
struct CommandReader {
    /// Dedicated: a blocking XREADGROUP would stall every request sharing a connection.
    connection: Connection,
    key: String,
    consumer: String,
    claim_idle_ms: u64,
    claim_pass_ms: u64,
    block_ms: u64,
    /// Where the next read of this consumer's own pending entries starts; None once done.
    own_pending_after: Option<String>,
    /// Where the claim pass in progress continues (`0-0` starts a pass).
    claim_cursor: String,
    next_claim_pass: Instant,
}

impl CommandReader {
    /// Runs until the engine drops the room's command stream.
    async fn run(
        mut self,
        items: mpsc::Sender<(String, CommandEnvelope)>,
        acks: mpsc::Sender<String>,
    ) {
        loop {
            // Room for a whole batch first: nothing is read that cannot be handed over.
            let Ok(permits) = items.reserve_many(COMMAND_READ_BATCH_COMMANDS).await else {
                return;
            };
            let entries = match self.next_entries().await {
                Ok(entries) => entries,
                Err(error) if error.code() == Some("NOGROUP") => {
                    self.recreate_group().await;
                    continue;
                }
                Err(error) => {
                    tracing::warn!(key = self.key, %error, "reading commands failed; retrying");
                    tokio::time::sleep(Duration::from_millis(REDIS_RETRY_DELAY_MS)).await;
                    continue;
                }
            };
            for (entry, permit) in entries.into_iter().zip(permits) {
                match decode_command_entry(&entry) {
                    Ok(command) => permit.send((entry.id, command)),
                    Err(error) => {
                        tracing::error!(key = self.key, %error, "dropping a command");
                        let _ = acks.send(entry.id).await;
                    }
                }
            }
        }
    }

    /// The group (or the whole stream) is gone: Redis restarted without persistence, or
    /// someone deleted the key. Everything it held is lost, but commands sent since are in
    /// a new stream: a group created from its start reads them.
    async fn recreate_group(&mut self) {
        tracing::warn!(
            key = self.key,
            "the command stream lost its consumer group (Redis restarted?); creating it again"
        );
        if let Err(error) = create_consumer_group(&mut self.connection, &self.key).await {
            tracing::warn!(key = self.key, %error, "creating the consumer group failed; retrying");
            tokio::time::sleep(Duration::from_millis(REDIS_RETRY_DELAY_MS)).await;
        }
        self.own_pending_after = None;
        self.claim_cursor = "0-0".to_owned();
    }

    async fn next_entries(&mut self) -> RedisResult<Vec<StreamId>> {
        if let Some(after) = self.own_pending_after.take() {
            let entries = self.read_group(&after, None).await?;
            if let Some(last) = entries.last() {
                self.own_pending_after = Some(last.id.clone());
                return Ok(entries);
            }
        }
        if Instant::now() >= self.next_claim_pass {
            let claimed = self.claim_idle().await?;
            if !claimed.is_empty() {
                return Ok(claimed);
            }
        }
        self.read_group(">", Some(self.block_ms)).await
    }

    async fn read_group(
        &mut self,
        after: &str,
        block_ms: Option<u64>,
    ) -> RedisResult<Vec<StreamId>> {
        let mut options = StreamReadOptions::default()
            .group(CONSUMER_GROUP, &self.consumer)
            .count(COMMAND_READ_BATCH_COMMANDS);
        if let Some(block_ms) = block_ms {
            options = options.block(block_ms as usize);
        }
        let reply: Option<StreamReadReply> = self
            .connection
            .xread_options(&[&self.key], &[after], &options)
            .await?;
        let keys = reply.map(|reply| reply.keys).unwrap_or_default();
        Ok(keys.into_iter().flat_map(|key| key.ids).collect())
    }

    async fn claim_idle(&mut self) -> RedisResult<Vec<StreamId>> {
        let options = StreamAutoClaimOptions::default().count(COMMAND_READ_BATCH_COMMANDS);
        let reply: StreamAutoClaimReply = self
            .connection
            .xautoclaim_options(
                &self.key,
                CONSUMER_GROUP,
                &self.consumer,
                self.claim_idle_ms,
                &self.claim_cursor,
                options,
            )
            .await?;
        if reply.next_stream_id == "0-0" {
            self.next_claim_pass = Instant::now() + Duration::from_millis(self.claim_pass_ms);
        }
        self.claim_cursor = reply.next_stream_id;
        Ok(reply.claimed)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{PROBE_INTERVAL_MS, bet, test_options, within};
    use super::*;
    use crate::bus::Bus;
    use crate::bus::redis_test_server::RedisTestServer;

    /// Redis restarted without persistence loses the command stream and its group: the
    /// engine's reader creates the group again and reads what gateways send from then on.
    #[tokio::test]
    async fn a_command_reader_recreates_its_group_after_a_redis_restart() {
        let mut server = RedisTestServer::start();
        let url = server.url();
        let engine = RedisBus::connect(&url, test_options("engine-a")).await;
        let gateway = RedisBus::connect(&url, test_options("gateway")).await;
        let (engine, gateway) = (engine.unwrap(), gateway.unwrap());
        let mut commands = engine.commands("r1").await.unwrap();
        gateway.send_command(bet("a")).await.unwrap();
        assert_eq!(within(commands.next()).await, Some(bet("a")));
        engine.commands_handled("r1").await;

        server.restart();
        // A send may meet the connection before it notices the restart; a player retries.
        within(async {
            while gateway.send_command(bet("b")).await.is_err() {
                tokio::time::sleep(Duration::from_millis(PROBE_INTERVAL_MS)).await;
            }
        })
        .await;
        assert_eq!(within(commands.next()).await, Some(bet("b")));
    }
}
