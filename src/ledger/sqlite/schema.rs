//! The ledger's tables, created and changed by embedded migrations applied at open;
//! `PRAGMA user_version` counts the steps applied.

use rusqlite::{Connection, TransactionBehavior};

use crate::ledger::{LedgerError, pending_migrations};

/// Schema steps, applied in order at open; `PRAGMA user_version` counts the steps applied.
/// Append only: a released step is never edited, a change is a new step.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE accounts (
    key TEXT PRIMARY KEY,
    balance INTEGER NOT NULL,
    CHECK (balance >= 0 OR key NOT LIKE 'player:%')
) STRICT;

CREATE TABLE transfers (
    id TEXT PRIMARY KEY,
    sequence INTEGER UNIQUE NOT NULL,
    debit TEXT NOT NULL,
    credit TEXT NOT NULL,
    amount INTEGER NOT NULL CHECK (amount > 0),
    kind TEXT NOT NULL CHECK (kind IN ('grant', 'bet', 'payout', 'refund')),
    debit_balance_after INTEGER NOT NULL,
    credit_balance_after INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    CHECK (debit <> credit),
    CHECK (debit_balance_after >= 0 OR debit NOT LIKE 'player:%')
) STRICT;

CREATE TABLE rounds (
    room TEXT NOT NULL,
    round INTEGER NOT NULL CHECK (round >= 0),
    hash TEXT NOT NULL,
    crash_hundredths INTEGER NOT NULL CHECK (crash_hundredths >= 100),
    started_at_ms INTEGER NOT NULL CHECK (started_at_ms >= 0),
    ended_at_ms INTEGER NULL CHECK (ended_at_ms >= 0),
    status TEXT NOT NULL CHECK (status IN ('betting', 'flying', 'crashed', 'aborted')),
    bets_total_minor INTEGER NOT NULL CHECK (bets_total_minor >= 0),
    payouts_total_minor INTEGER NOT NULL CHECK (payouts_total_minor >= 0),
    PRIMARY KEY (room, round)
) STRICT;

-- Recovery looks up a room's unfinished rounds at every engine start.
CREATE INDEX rounds_unfinished ON rounds (room, round)
    WHERE status IN ('betting', 'flying');
"#,
    r#"
-- A bet's auto-cashout target or a payout's multiplier, so a standby resumes the round.
ALTER TABLE transfers ADD COLUMN multiplier_hundredths INTEGER NULL
    CHECK (multiplier_hundredths >= 100);

-- The highest fencing token that wrote each room (see `check_fence`).
CREATE TABLE fences (
    room TEXT PRIMARY KEY,
    token INTEGER NOT NULL CHECK (token >= 0)
) STRICT;
"#,
    crate::ledger::GUEST_EXPIRY_INDEXES,
    r#"
-- A room's operator controls, written by its leader (fenced) and read at takeover.
CREATE TABLE room_controls (
    room TEXT PRIMARY KEY,
    paused INTEGER NOT NULL CHECK (paused IN (0, 1)),
    bet_amount_min_minor INTEGER NOT NULL CHECK (bet_amount_min_minor >= 1),
    bet_amount_max_minor INTEGER NOT NULL,
    round_profit_max_minor INTEGER NOT NULL,
    CHECK (bet_amount_min_minor <= bet_amount_max_minor),
    CHECK (round_profit_max_minor >= bet_amount_max_minor)
) STRICT;

-- Every admin action, appended and never changed.
CREATE TABLE audit (
    sequence INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL CHECK (at_ms >= 0),
    operator TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('pause_room', 'resume_room', 'set_room_limits',
        'kick_player', 'ban_player')),
    target TEXT NOT NULL,
    state_before TEXT NOT NULL,
    state_after TEXT NOT NULL
) STRICT;

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit is append-only'); END;
"#,
    r#"
-- Players whose tokens every gateway refuses, loaded at each gateway's start.
CREATE TABLE bans (
    player TEXT PRIMARY KEY,
    banned_at_ms INTEGER NOT NULL CHECK (banned_at_ms >= 0),
    operator TEXT NOT NULL
) STRICT;

-- The audit takes 'unban_player'. SQLite changes a CHECK only by copying the table; the
-- append-only triggers go with the old table (DROP TABLE fires none) and come back.
CREATE TABLE audit_with_unban (
    sequence INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL CHECK (at_ms >= 0),
    operator TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('pause_room', 'resume_room', 'set_room_limits',
        'kick_player', 'ban_player', 'unban_player')),
    target TEXT NOT NULL,
    state_before TEXT NOT NULL,
    state_after TEXT NOT NULL
) STRICT;
INSERT INTO audit_with_unban (sequence, at_ms, operator, action, target, state_before,
    state_after)
    SELECT sequence, at_ms, operator, action, target, state_before, state_after FROM audit;
DROP TABLE audit;
ALTER TABLE audit_with_unban RENAME TO audit;

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit is append-only'); END;
"#,
    r#"
-- Players whose chat every gateway refuses, loaded at each gateway's start.
CREATE TABLE mutes (
    player TEXT PRIMARY KEY,
    muted_at_ms INTEGER NOT NULL CHECK (muted_at_ms >= 0),
    operator TEXT NOT NULL
) STRICT;

-- The audit takes 'mute_player' and 'unmute_player', by the copy of the bans step.
CREATE TABLE audit_with_mute (
    sequence INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL CHECK (at_ms >= 0),
    operator TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('pause_room', 'resume_room', 'set_room_limits',
        'kick_player', 'ban_player', 'unban_player', 'mute_player', 'unmute_player')),
    target TEXT NOT NULL,
    state_before TEXT NOT NULL,
    state_after TEXT NOT NULL
) STRICT;
INSERT INTO audit_with_mute (sequence, at_ms, operator, action, target, state_before,
    state_after)
    SELECT sequence, at_ms, operator, action, target, state_before, state_after FROM audit;
DROP TABLE audit;
ALTER TABLE audit_with_mute RENAME TO audit;

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit is append-only'); END;
"#,
    r#"
-- The names players picked; at most one player holds a key (case, separators and
-- look-alike digits folded), so no two players show as one name.
CREATE TABLE display_names (
    player TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    named_at_ms INTEGER NOT NULL CHECK (named_at_ms >= 0)
) STRICT;
"#,
];

/// Applies the `steps` the database has not seen yet (all of `MIGRATIONS`, but for tests
/// that build an older schema), each in its own transaction with its `user_version` bump,
/// so a crash mid-migration leaves a consistent version.
pub(super) fn migrate(
    connection: &mut Connection,
    path: &str,
    steps: &[&str],
) -> Result<(), LedgerError> {
    let open_error = |source| LedgerError::Open {
        path: path.to_owned(),
        source,
    };
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(open_error)?;
    for (version_after, step) in pending_migrations(version, steps, path)? {
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(open_error)?;
        transaction.execute_batch(step).map_err(open_error)?;
        transaction
            .pragma_update(None, "user_version", version_after)
            .map_err(open_error)?;
        transaction.commit().map_err(open_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rusqlite::params;

    use super::*;
    use crate::ledger::conformance::{player, transfer};
    use crate::ledger::sqlite::SqliteLedger;
    use crate::ledger::{Account, Fence, Ledger, TransferOutcome};

    #[test]
    fn schema_refuses_a_negative_player_balance_written_behind_the_code() {
        let ledger = SqliteLedger::open_in_memory().unwrap();
        let connection = ledger.connection.lock().unwrap();
        let negative = connection.execute(
            "INSERT INTO accounts (key, balance) VALUES ('player:x', -1)",
            [],
        );
        assert!(negative.is_err(), "CHECK constraint holds");
        connection
            .execute(
                "INSERT INTO accounts (key, balance) VALUES ('house', -1)",
                [],
            )
            .unwrap();
        let insert = |amount: i64, multiplier: Option<i64>| {
            connection.execute(
                "INSERT INTO transfers (id, sequence, debit, credit, amount, kind, \
                 debit_balance_after, credit_balance_after, created_at_ms, multiplier_hundredths) \
                 VALUES ('t', 1, 'mint', 'house', ?1, 'grant', 0, 0, 0, ?2)",
                params![amount, multiplier],
            )
        };
        assert!(insert(0, None).is_err(), "CHECK constraint holds");
        assert!(insert(1, Some(99)).is_err(), "CHECK constraint holds");
        let negative_token = connection.execute("INSERT INTO fences VALUES ('main', -1)", []);
        assert!(negative_token.is_err(), "CHECK constraint holds");
        insert(1, Some(100)).unwrap();
    }

    /// A database written before multipliers and fences (schema version 1) migrates on
    /// open; its transfers read back with no multiplier and fenced writes work at once.
    #[tokio::test]
    async fn a_ledger_from_the_first_schema_version_migrates() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("ledger.db");
        {
            let mut connection = Connection::open(&path).unwrap();
            migrate(&mut connection, "old", &MIGRATIONS[..1]).unwrap();
            connection
                .execute_batch(
                    "INSERT INTO accounts VALUES ('mint', -100), ('player:a', 100); \
                     INSERT INTO transfers VALUES \
                     ('g:a', 1, 'mint', 'player:a', 100, 'grant', -100, 100, 0);",
                )
                .unwrap();
        }
        let ledger = SqliteLedger::open(&path).unwrap();
        let version: i64 = ledger
            .connection
            .lock()
            .unwrap()
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, i64::try_from(MIGRATIONS.len()).unwrap());
        let old = ledger.transfer("g:a").await.unwrap().unwrap();
        assert_eq!(
            old.transfer,
            transfer("g:a", Account::Mint, player("a"), 100)
        );
        assert_eq!(old.transfer.multiplier_hundredths, None);
        let fence = Fence {
            room: "main".into(),
            token: 1,
        };
        let mut bet = transfer("b:a", player("a"), Account::House, 40);
        bet.multiplier_hundredths = Some(150);
        let outcomes = ledger
            .apply_batch_fenced(vec![bet.clone()], &fence)
            .await
            .unwrap();
        assert!(matches!(outcomes[0], TransferOutcome::Committed { .. }));
        assert_eq!(ledger.transfer("b:a").await.unwrap().unwrap().transfer, bet);
    }

    /// A database of schema version 4 (audit, no bans) keeps its audit through the copy
    /// that lets it take `unban_player`, and the copy is append-only like the original.
    #[tokio::test]
    async fn an_audit_of_version_4_survives_the_bans_step() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("ledger.db");
        {
            let mut connection = Connection::open(&path).unwrap();
            migrate(&mut connection, "old", &MIGRATIONS[..4]).unwrap();
            connection
                .execute_batch(
                    "INSERT INTO audit (at_ms, operator, action, target, state_before, \
                     state_after) VALUES (5, 'ops', 'kick_player', 'p', '{}', '{}')",
                )
                .unwrap();
        }
        let ledger = SqliteLedger::open(&path).unwrap();
        let kept = ledger.audit_entries(10).await.unwrap();
        assert_eq!((kept.len(), kept[0].operator.as_str()), (1, "ops"));
        let connection = ledger.connection.lock().unwrap();
        for statement in ["UPDATE audit SET operator = 'x'", "DELETE FROM audit"] {
            let refused = connection.execute(statement, []).unwrap_err();
            assert!(refused.to_string().contains("append-only"), "{statement}");
        }
        connection
            .execute(
                "INSERT INTO audit (at_ms, operator, action, target, state_before, \
                 state_after) VALUES (6, 'ops', 'unban_player', 'p', '{}', '{}')",
                [],
            )
            .unwrap();
    }

    /// A database of schema version 5 (bans, no mutes) keeps its audit, with the
    /// sequence that orders it, through the copy that lets it take `mute_player` and
    /// `unmute_player`, and the copy is append-only like the original.
    #[tokio::test]
    async fn an_audit_of_version_5_survives_the_mutes_step() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("ledger.db");
        let insert = |action: &str, at_ms: u64| {
            format!(
                "INSERT INTO audit (at_ms, operator, action, target, state_before, \
                 state_after) VALUES ({at_ms}, 'ops', '{action}', 'p', '{{}}', '{{}}')"
            )
        };
        {
            let mut connection = Connection::open(&path).unwrap();
            migrate(&mut connection, "old", &MIGRATIONS[..5]).unwrap();
            connection.execute_batch(&insert("ban_player", 5)).unwrap();
            connection
                .execute_batch(&insert("unban_player", 6))
                .unwrap();
            let refused = connection.execute_batch(&insert("mute_player", 7));
            assert!(refused.is_err(), "version 5 has no mute_player");
        }
        let ledger = SqliteLedger::open(&path).unwrap();
        let kept = ledger.audit_entries(10).await.unwrap();
        let actions: Vec<_> = kept.iter().map(|entry| entry.action.as_str()).collect();
        assert_eq!(actions, ["unban_player", "ban_player"]);
        let connection = ledger.connection.lock().unwrap();
        for statement in ["UPDATE audit SET operator = 'x'", "DELETE FROM audit"] {
            let refused = connection.execute(statement, []).unwrap_err();
            assert!(refused.to_string().contains("append-only"), "{statement}");
        }
        for action in ["mute_player", "unmute_player"] {
            connection.execute_batch(&insert(action, 8)).unwrap();
        }
    }

    #[test]
    fn a_database_from_a_newer_build_is_refused() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("ledger.db");
        drop(SqliteLedger::open(&path).unwrap());
        let connection = Connection::open(&path).unwrap();
        connection.pragma_update(None, "user_version", 99).unwrap();
        drop(connection);
        match SqliteLedger::open(&path) {
            Err(LedgerError::SchemaTooNew { found: 99, .. }) => {}
            other => panic!("expected SchemaTooNew, got {:?}", other.err()),
        }
    }
}
