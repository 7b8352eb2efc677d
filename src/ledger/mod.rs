//! The ledger: every movement of money, double-entry, exactly once.
//!
//! Owns accounts, transfers and the round journal. A transfer moves a positive integer
//! amount of minor units from a debit account to a credit account under a unique id;
//! re-applying an id returns the first result and moves nothing (exactly-once effect
//! under retries). Player balances never go below zero; the mint (which issues demo
//! balances) and the house may. Because every transfer debits and credits the same
//! amount, the sum of all balances is always zero.
//!
//! The engine hands the ledger a whole tick's transfers at once: `apply_batch` runs them
//! in one transaction (group commit), each succeeding or failing on its own.
//!
//! In cluster mode an engine leads a room only while it holds a lease whose fencing token
//! grows with every new leader. Its writes go through the `*_fenced` calls, which store
//! the room's highest token in the same transaction as the write and refuse a lower one,
//! so a deposed leader (paused, partitioned) cannot write after its successor has started.
//!
//! Implementations: [`sqlite::SqliteLedger`] (embedded default) and
//! [`postgres::PostgresLedger`] (cluster mode), both held to the same conformance suite
//! (`ledger::conformance`). The rules they share live here, so the two cannot drift
//! apart: what a batch does (`plan`, a pure planner both execute), what makes a transfer
//! malformed, how a prefix becomes a key range, how a stored row is read back
//! (`row_decoding`), which migrations a database has yet to apply. [`TransferId`] is the
//! format of the ids aloft gives its own transfers.

mod admin_records;
pub mod batcher;
mod display_names;
mod plan;
pub mod postgres;
mod row_decoding;
pub mod sqlite;
mod transfer_id;

#[cfg(test)]
mod conformance;
#[cfg(test)]
pub(crate) mod flaky;
#[cfg(test)]
mod postgres_test_database;

use async_trait::async_trait;
use serde::Serialize;

use crate::display_name::DisplayName;

pub use admin_records::{
    AUDIT_ENTRIES_MAX, AuditAction, AuditEntry, PLAYER_BETS_MAX, PlayerBet, RESTRICTED_PLAYERS_MAX,
    Restriction, RestrictionChange, RoomControls, RoomControlsChange, RoomLimits,
};
pub use display_names::NameOutcome;
pub use postgres::PostgresLedger;
pub(crate) use row_decoding::{SELECT_ROUND_COLUMNS, SELECT_TRANSFER_COLUMNS};
pub use sqlite::SqliteLedger;
pub use transfer_id::{BetRef, BetTransferKind, TransferId, TransferIdError};

/// Schema step of both backends for `Ledger::expire_unused_guests`: grants by age, and
/// whether a player ever bet (a bet is the only transfer that debits a player).
pub(crate) const GUEST_EXPIRY_INDEXES: &str = "
CREATE INDEX transfers_grants ON transfers (created_at_ms) WHERE kind = 'grant';
CREATE INDEX transfers_debit ON transfers (debit);
";

/// An account of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Account {
    /// Issues demo balances to guests; its balance is minus all money in circulation.
    Mint,
    /// Takes stakes and pays wins; its balance is the operator's result.
    House,
    /// A player's wallet; never negative.
    Player(String),
}

impl Account {
    /// The account's key as stored: `mint`, `house` or `player:<id>`.
    pub fn key(&self) -> String {
        match self {
            Account::Mint => "mint".to_owned(),
            Account::House => "house".to_owned(),
            Account::Player(id) => format!("player:{id}"),
        }
    }

    /// Parses a stored key back into an account.
    pub fn from_key(key: &str) -> Option<Account> {
        match key {
            "mint" => Some(Account::Mint),
            "house" => Some(Account::House),
            _ => key
                .strip_prefix("player:")
                .map(|id| Account::Player(id.to_owned())),
        }
    }

    /// Whether the balance may go below zero.
    pub fn may_go_negative(&self) -> bool {
        !matches!(self, Account::Player(_))
    }
}

/// Why money moved; stored with the transfer for audits and the round journal, as its
/// snake_case name (`FromStr` reads it back).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, strum::IntoStaticStr, strum::EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum TransferKind {
    /// Demo balance issued to a new guest (mint → player).
    Grant,
    /// A stake (player → house).
    Bet,
    /// A win, stake included (house → player).
    Payout,
    /// A stake given back because its round was aborted (house → player).
    Refund,
}

impl TransferKind {
    /// The kind as stored (and as a metric label): `grant`, `bet`, `payout`, `refund`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The lowest multiplier a transfer may carry: 1.00x, where every round starts.
const MULTIPLIER_MIN_HUNDREDTHS: u64 = 100;

/// A request to move money. The id is the idempotency key: derive it from what makes the
/// movement unique, never from a retry counter. aloft's own transfers take theirs from
/// [`TransferId`] (`bet:<room>:<round>:<player>:<slot>`, `grant:<player>`, …); the ledger
/// stores any non-empty id as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub id: String,
    pub debit: Account,
    pub credit: Account,
    /// Strictly positive, in minor units.
    pub amount_minor: i64,
    pub kind: TransferKind,
    /// For a bet: its auto-cashout target; for a payout: the multiplier it was paid at;
    /// otherwise None. Stored with the transfer and part of the idempotency comparison.
    /// At least 100 (1.00x) when present. A standby that takes a room over resumes the
    /// round in flight from these.
    pub multiplier_hundredths: Option<u64>,
}

impl Transfer {
    /// Rejects transfers no correct caller sends; a batch holding one is refused whole.
    pub fn validate(&self) -> Result<(), LedgerError> {
        let reason = if self.id.is_empty() {
            "the id is empty"
        } else if self.amount_minor <= 0 {
            "the amount is not positive"
        } else if self.debit == self.credit {
            "the debit and credit accounts are the same"
        } else if self
            .multiplier_hundredths
            .is_some_and(|multiplier| multiplier < MULTIPLIER_MIN_HUNDREDTHS)
        {
            "the multiplier is below 1.00x"
        } else {
            return Ok(());
        };
        Err(LedgerError::InvalidTransfer {
            id: self.id.clone(),
            reason,
        })
    }
}

/// What happened to one transfer of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferOutcome {
    /// The transfer is in the ledger. `replayed` is true when its id had already been
    /// committed: then nothing moved now, and the balances are those recorded at the
    /// first commit (so a retry sees exactly the first result).
    Committed {
        debit_balance_after_minor: i64,
        credit_balance_after_minor: i64,
        replayed: bool,
    },
    /// The debit account would go below zero; nothing moved.
    InsufficientFunds { available_minor: i64 },
    /// The id was committed before with different accounts, amount, kind or multiplier:
    /// a caller bug. Nothing moved.
    IdConflict,
}

/// A committed transfer as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTransfer {
    pub transfer: Transfer,
    pub debit_balance_after_minor: i64,
    pub credit_balance_after_minor: i64,
    /// Commit order, strictly increasing.
    pub sequence: i64,
}

/// A round as journaled: written when betting opens, when it starts flying and when it
/// ends, so that a restarted engine finds rounds left unfinished and settles them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoundRecord {
    pub room: String,
    pub round: u64,
    /// The round's hash from the fairness chain, hex. Revealed publicly only at the crash.
    pub hash: String,
    /// Crash point in hundredths.
    pub crash_hundredths: u64,
    /// Unix ms the multiplier started climbing; 0 while betting.
    pub started_at_ms: u64,
    /// Unix ms of the crash, or `None` while the round is in flight.
    pub ended_at_ms: Option<u64>,
    pub status: RoundStatus,
    /// Sum of the stakes that played, in minor units: a refunded stake (a bet its player
    /// cancelled, or one an abort refunded) is out of the round.
    pub bets_total_minor: i64,
    /// Sum of payouts, in minor units.
    pub payouts_total_minor: i64,
}

/// Proof that a writer leads `room`: the fencing token of its lease, strictly increasing
/// per room across leaders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub room: String,
    pub token: u64,
}

impl Fence {
    /// The token as the databases store it (signed 64-bit); a lease service never comes
    /// near 2^63, so a token above is refused rather than wrapped.
    pub(crate) fn sql_token(&self) -> Result<i64, LedgerError> {
        i64::try_from(self.token).map_err(|_| LedgerError::OutOfRange {
            field: "fence token",
            value: self.token,
        })
    }

    /// The refusal for this fence when the room's stored token is `current` (read back
    /// from the database, where a CHECK keeps it non-negative).
    pub(crate) fn stale(&self, current: i64) -> LedgerError {
        match u64::try_from(current) {
            Ok(current) => LedgerError::Fenced {
                room: self.room.clone(),
                token: self.token,
                current,
            },
            Err(_) => LedgerError::Corrupt(format!("fence token {current} of {}", self.room)),
        }
    }
}

#[cfg(test)]
impl Fence {
    /// Raises the room's stored token to this one, moving no money: an empty fenced
    /// batch, which checks and stores the fence like any fenced write. `Err(Fenced)` if a
    /// higher token is stored. Engines take their token with `Ledger::acquire_fence`;
    /// tests set one directly.
    pub(crate) async fn raise(&self, ledger: &dyn Ledger) -> Result<(), LedgerError> {
        ledger.apply_batch_fenced(Vec::new(), self).await.map(drop)
    }
}

/// The token `acquire_fence` read back for `room` (a CHECK keeps stored tokens
/// non-negative, and an increment makes it positive).
pub(crate) fn acquired_token(room: &str, token: i64) -> Result<u64, LedgerError> {
    u64::try_from(token)
        .ok()
        .filter(|token| *token > 0)
        .ok_or_else(|| LedgerError::Corrupt(format!("fence token {token} of {room}")))
}

/// Where a journaled round stands; stored as its snake_case name (`FromStr` reads it back).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr, strum::EnumString)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RoundStatus {
    Betting,
    Flying,
    Crashed,
    /// Stopped before its crash (shutdown or recovery); open stakes were refunded.
    Aborted,
}

impl RoundStatus {
    /// The status as stored: `betting`, `flying`, `crashed`, `aborted`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A ledger failure. Money never moves when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The SQLite database could not be opened or migrated: check the data directory's
    /// path and permissions.
    #[error("cannot open the ledger at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    /// The PostgreSQL database could not be reached, or its URL is malformed: check the
    /// URL (host, port, user, database name), that the server runs and admits this user.
    /// `url` is shown without its password.
    #[error("cannot connect to the ledger database at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The database was written by a newer aloft (its schema version is above the
    /// migrations this build knows): run the newer binary, or restore a backup. `path` is
    /// the SQLite file or the PostgreSQL URL (without its password).
    #[error("the ledger at {path} has schema version {found}; this build knows up to {supported}")]
    SchemaTooNew {
        path: String,
        found: i64,
        supported: i64,
    },
    /// A SQLite query failed; the transaction was rolled back. Usually disk full or I/O
    /// error.
    #[error("ledger storage error: {0}")]
    Storage(#[from] rusqlite::Error),
    /// A PostgreSQL query failed; the transaction was rolled back. Usually a lost
    /// connection or a server restart: check the server's log, then retry the call (ids
    /// make retries safe).
    #[error("ledger database error: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had from the pool in time: the server is down or
    /// slow, or `pool_size_max` is too small for the load.
    #[error("no ledger database connection available: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// A batch lost every one of its bounded retries to concurrent writers (deadlocks,
    /// serialization failures, ids committed by another process at the same moment).
    /// Nothing moved; retry the call. If it persists, fewer processes should write the
    /// same accounts at once.
    #[error("ledger batch gave up after {attempts} attempts lost to concurrent writers")]
    Contention { attempts: u32 },
    /// A stored value this build did not write (unknown account key, transfer kind or
    /// round status, a negative round field): the database was edited by another program.
    /// Fix the row or restore a backup.
    #[error("corrupt ledger row: {0}")]
    Corrupt(String),
    /// A round journal value does not fit the database's signed 64-bit integers: a caller
    /// bug, since no real round number, crash point or timestamp comes near 2^63.
    #[error("{field} = {value} does not fit a signed 64-bit database integer")]
    OutOfRange { field: &'static str, value: u64 },
    /// A newer leader of `room` has raised the room's fence past this writer's token: this
    /// engine lost its lease (it was paused or cut off) and must stop leading the room.
    /// Nothing was written.
    #[error(
        "room {room}: fencing token {token} is stale, a newer leader holds {current}; \
         this engine was deposed"
    )]
    Fenced {
        room: String,
        token: u64,
        current: u64,
    },
    /// A transfer was malformed (non-positive amount, same debit and credit account, a
    /// multiplier below 1.00x).
    #[error("invalid transfer {id}: {reason}")]
    InvalidTransfer { id: String, reason: &'static str },
    /// The blocking worker died (a panic inside the storage layer).
    #[error("ledger worker failed: {0}")]
    Worker(String),
}

/// The smallest string above every string that starts with `prefix`, or `None` when no
/// string is (empty prefix, or only `char::MAX`): `transfers_with_prefix` scans the key
/// range `[prefix, bound)` instead of using `LIKE`, so `_` and `%` in ids are plain
/// characters and the primary-key index is used. Both backends compare ids bytewise
/// (SQLite always, PostgreSQL through `COLLATE "C"`), and UTF-8 byte order is code point
/// order, so bumping the last bumpable character is enough.
pub(crate) fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        // The next scalar value, skipping the surrogate gap that `char` cannot hold.
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The steps of `migrations` a database at schema version `applied` has yet to apply,
/// each with the version it leaves the database at; both stores apply them in order.
/// `path` names the database in errors: one newer than `migrations` (`SchemaTooNew`) or a
/// negative version (`Corrupt`).
pub(crate) fn pending_migrations<'m>(
    applied: i64,
    migrations: &'m [&'m str],
    path: &str,
) -> Result<impl Iterator<Item = (i64, &'m str)> + use<'m>, LedgerError> {
    let known = i64::try_from(migrations.len()).expect("a handful of migrations");
    if applied > known {
        return Err(LedgerError::SchemaTooNew {
            path: path.to_owned(),
            found: applied,
            supported: known,
        });
    }
    let skipped = usize::try_from(applied)
        .map_err(|_| LedgerError::Corrupt(format!("schema version {applied} of {path}")))?;
    Ok((1_i64..).zip(migrations.iter().copied()).skip(skipped))
}

/// Double-entry storage of money and of the round journal.
#[async_trait]
pub trait Ledger: Send + Sync + 'static {
    /// Applies `batch` in order in one transaction. Each transfer succeeds or fails on
    /// its own (an insufficient balance fails that transfer only); the outcomes come back
    /// in the same order. An `Err` means the whole batch was rolled back. With a `fence`
    /// (the leader of `fence.room`), the same transaction first checks that `fence.token`
    /// is at least the highest token stored for the room (and stores it); a lower token
    /// returns `Err(Fenced)` and nothing changes.
    async fn write_batch(
        &self,
        batch: Vec<Transfer>,
        fence: Option<&Fence>,
    ) -> Result<Vec<TransferOutcome>, LedgerError>;

    /// Inserts or updates (by room and round) a round of the journal; with a `fence`,
    /// under the same check as [`Ledger::write_batch`].
    async fn write_round(
        &self,
        record: RoundRecord,
        fence: Option<&Fence>,
    ) -> Result<(), LedgerError>;

    /// [`Ledger::write_batch`] without a fence (guest grants, the embedded engine).
    async fn apply_batch(&self, batch: Vec<Transfer>) -> Result<Vec<TransferOutcome>, LedgerError> {
        self.write_batch(batch, None).await
    }

    /// [`Ledger::write_batch`] for the leader of `fence.room`.
    async fn apply_batch_fenced(
        &self,
        batch: Vec<Transfer>,
        fence: &Fence,
    ) -> Result<Vec<TransferOutcome>, LedgerError> {
        self.write_batch(batch, Some(fence)).await
    }

    /// [`Ledger::write_round`] without a fence.
    async fn record_round(&self, record: RoundRecord) -> Result<(), LedgerError> {
        self.write_round(record, None).await
    }

    /// [`Ledger::write_round`] for the leader of `fence.room`.
    async fn record_round_fenced(
        &self,
        record: RoundRecord,
        fence: &Fence,
    ) -> Result<(), LedgerError> {
        self.write_round(record, Some(fence)).await
    }

    /// The account's balance in minor units; 0 for an account that never moved money.
    async fn balance(&self, account: &Account) -> Result<i64, LedgerError>;

    /// Sum of every account's balance. Always 0: a test and an operator check.
    async fn total_balance(&self) -> Result<i64, LedgerError>;

    /// The committed transfer with this id, if any.
    async fn transfer(&self, id: &str) -> Result<Option<StoredTransfer>, LedgerError>;

    /// Committed transfers whose id starts with `prefix`, in commit order.
    async fn transfers_with_prefix(&self, prefix: &str)
    -> Result<Vec<StoredTransfer>, LedgerError>;

    /// Makes the caller the fenced writer of `room`: increments the room's stored token
    /// (from 0 for a room never fenced) and returns it, in one transaction. Every call gets
    /// a token above any the room's fence held before, however many race, so a new leader
    /// takes its token here, from the durable store, and whatever its predecessors still
    /// write with theirs is refused from then on.
    async fn acquire_fence(&self, room: &str) -> Result<u64, LedgerError>;

    /// The latest `limit` rounds of a room, newest first.
    async fn recent_rounds(
        &self,
        room: &str,
        limit: usize,
    ) -> Result<Vec<RoundRecord>, LedgerError>;

    /// The latest `limit` crashed rounds of a room, newest first: the settled rounds whose
    /// stakes and payouts make the house's figures (an aborted round refunded its stakes).
    /// One bounded query.
    async fn settled_rounds(
        &self,
        room: &str,
        limit: usize,
    ) -> Result<Vec<RoundRecord>, LedgerError>;

    /// Rounds of a room still marked Betting or Flying (left by a process that died),
    /// oldest first.
    async fn unfinished_rounds(&self, room: &str) -> Result<Vec<RoundRecord>, LedgerError>;

    /// Removes at most `guests_max` unused guests in one transaction, and
    /// returns how many. Unused: the player's only transfer is its grant from the mint,
    /// committed before `granted_before_ms` (unix ms), and its balance is that grant.
    /// (Any other activity starts with a bet, which debits the player, so "no debit"
    /// means "never played".) The grant's amount goes back to the mint and the account
    /// and its grant are deleted, so the sum of all balances is unchanged and the ledger
    /// keeps no row for them. A player who ever bet is never removed. A removed player
    /// that comes back has balance 0, like any unknown account.
    async fn expire_unused_guests(
        &self,
        granted_before_ms: u64,
        guests_max: usize,
    ) -> Result<u64, LedgerError>;

    /// Stores `change.after` as the room's controls and appends the change's audit entry,
    /// in one transaction. With a `fence` (the room's leader), under the same check as
    /// [`Ledger::write_batch`]: a stale token writes neither.
    async fn write_room_controls(
        &self,
        change: &RoomControlsChange,
        fence: Option<&Fence>,
    ) -> Result<(), LedgerError>;

    /// The room's controls as last written; `None` for a room no operator ever changed
    /// (it runs on its configuration).
    async fn room_controls(&self, room: &str) -> Result<Option<RoomControls>, LedgerError>;

    /// Appends an admin action its caller performed (a player-level one) to the audit.
    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), LedgerError>;

    /// The newest `limit` audit entries, at most [`AUDIT_ENTRIES_MAX`], newest first.
    async fn audit_entries(&self, limit: usize) -> Result<Vec<AuditEntry>, LedgerError>;

    /// The player's latest `limit` bets, at most [`PLAYER_BETS_MAX`], newest first, each
    /// with its payout or refund: one bounded query.
    async fn player_bets(&self, player: &str, limit: usize) -> Result<Vec<PlayerBet>, LedgerError>;

    /// Imposes `change.restriction` on `change.player` (a ban, a mute) or lifts it, and
    /// appends the change's audit entry with whether the player was under it before, in
    /// one transaction; returns that.
    async fn write_restriction(&self, change: &RestrictionChange) -> Result<bool, LedgerError>;

    /// The players under `restriction`, the oldest first, at most `limit` (and
    /// [`RESTRICTED_PLAYERS_MAX`]).
    async fn restricted_players(
        &self,
        restriction: Restriction,
        limit: usize,
    ) -> Result<Vec<String>, LedgerError>;

    /// Gives `player` the display name `name` (replacing its own) at `at_ms`, unless
    /// another player holds a name with the same key: then [`NameOutcome::Taken`] and
    /// nothing changes.
    async fn set_display_name(
        &self,
        player: &str,
        name: &DisplayName,
        at_ms: u64,
    ) -> Result<NameOutcome, LedgerError>;

    /// The display name `player` picked, if any.
    async fn display_name(&self, player: &str) -> Result<Option<String>, LedgerError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_applies_the_migrations_after_its_version_and_no_others() {
        let steps = ["one", "two", "three"];
        let pending = |applied| {
            pending_migrations(applied, &steps, "db").map(|steps| steps.collect::<Vec<_>>())
        };
        assert_eq!(pending(0).unwrap(), [(1, "one"), (2, "two"), (3, "three")]);
        assert_eq!(pending(2).unwrap(), [(3, "three")]);
        assert_eq!(pending(3).unwrap(), []);
        assert!(matches!(
            pending(4),
            Err(LedgerError::SchemaTooNew {
                found: 4,
                supported: 3,
                ..
            })
        ));
        assert!(matches!(pending(-1), Err(LedgerError::Corrupt(_))));
    }

    #[test]
    fn prefix_upper_bound_bumps_the_last_bumpable_character() {
        assert_eq!(prefix_upper_bound(""), None);
        assert_eq!(prefix_upper_bound("bet:"), Some("bet;".to_owned()));
        assert_eq!(
            prefix_upper_bound("a\u{D7FF}"),
            Some("a\u{E000}".to_owned())
        );
        assert_eq!(prefix_upper_bound("a\u{10FFFF}"), Some("b".to_owned()));
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
    }
}
