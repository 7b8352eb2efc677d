//! Tests only: a ledger whose next batches fail as a storage fault would, over a real
//! one, for the callers that must survive a failing ledger (the engine, the cashier).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;

use super::{
    Account, AuditEntry, Fence, Ledger, LedgerError, NameOutcome, PlayerBet, Restriction,
    RestrictionChange, RoomControls, RoomControlsChange, RoundRecord, StoredTransfer, Transfer,
    TransferOutcome,
};
use crate::display_name::DisplayName;

/// `inner`, except that its next `failures` batches fail before reaching it.
pub(crate) struct FlakyLedger {
    inner: Arc<dyn Ledger>,
    failures: AtomicU32,
}

impl FlakyLedger {
    pub(crate) fn new(inner: Arc<dyn Ledger>) -> FlakyLedger {
        FlakyLedger {
            inner,
            failures: AtomicU32::new(0),
        }
    }

    /// The next `batches` calls of `write_batch` fail and write nothing.
    pub(crate) fn fail_next(&self, batches: u32) {
        self.failures.store(batches, Ordering::SeqCst);
    }
}

#[async_trait]
impl Ledger for FlakyLedger {
    async fn write_batch(
        &self,
        batch: Vec<Transfer>,
        fence: Option<&Fence>,
    ) -> Result<Vec<TransferOutcome>, LedgerError> {
        let decrement = |left: u32| left.checked_sub(1);
        let ordering = Ordering::SeqCst;
        if (self.failures)
            .fetch_update(ordering, ordering, decrement)
            .is_ok()
        {
            return Err(LedgerError::Worker("injected fault".into()));
        }
        self.inner.write_batch(batch, fence).await
    }
    async fn balance(&self, account: &Account) -> Result<i64, LedgerError> {
        self.inner.balance(account).await
    }
    async fn total_balance(&self) -> Result<i64, LedgerError> {
        self.inner.total_balance().await
    }
    async fn transfer(&self, id: &str) -> Result<Option<StoredTransfer>, LedgerError> {
        self.inner.transfer(id).await
    }
    async fn transfers_with_prefix(
        &self,
        prefix: &str,
    ) -> Result<Vec<StoredTransfer>, LedgerError> {
        self.inner.transfers_with_prefix(prefix).await
    }
    async fn write_round(
        &self,
        record: RoundRecord,
        fence: Option<&Fence>,
    ) -> Result<(), LedgerError> {
        self.inner.write_round(record, fence).await
    }
    async fn acquire_fence(&self, room: &str) -> Result<u64, LedgerError> {
        self.inner.acquire_fence(room).await
    }
    async fn recent_rounds(
        &self,
        room: &str,
        limit: usize,
    ) -> Result<Vec<RoundRecord>, LedgerError> {
        self.inner.recent_rounds(room, limit).await
    }
    async fn settled_rounds(
        &self,
        room: &str,
        limit: usize,
    ) -> Result<Vec<RoundRecord>, LedgerError> {
        self.inner.settled_rounds(room, limit).await
    }
    async fn unfinished_rounds(&self, room: &str) -> Result<Vec<RoundRecord>, LedgerError> {
        self.inner.unfinished_rounds(room).await
    }
    async fn expire_unused_guests(
        &self,
        granted_before_ms: u64,
        guests_max: usize,
    ) -> Result<u64, LedgerError> {
        self.inner
            .expire_unused_guests(granted_before_ms, guests_max)
            .await
    }
    async fn write_room_controls(
        &self,
        change: &RoomControlsChange,
        fence: Option<&Fence>,
    ) -> Result<(), LedgerError> {
        self.inner.write_room_controls(change, fence).await
    }
    async fn room_controls(&self, room: &str) -> Result<Option<RoomControls>, LedgerError> {
        self.inner.room_controls(room).await
    }
    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), LedgerError> {
        self.inner.append_audit(entry).await
    }
    async fn audit_entries(&self, limit: usize) -> Result<Vec<AuditEntry>, LedgerError> {
        self.inner.audit_entries(limit).await
    }
    async fn player_bets(&self, player: &str, limit: usize) -> Result<Vec<PlayerBet>, LedgerError> {
        self.inner.player_bets(player, limit).await
    }
    async fn write_restriction(&self, change: &RestrictionChange) -> Result<bool, LedgerError> {
        self.inner.write_restriction(change).await
    }
    async fn restricted_players(
        &self,
        restriction: Restriction,
        limit: usize,
    ) -> Result<Vec<String>, LedgerError> {
        self.inner.restricted_players(restriction, limit).await
    }

    async fn set_display_name(
        &self,
        player: &str,
        name: &DisplayName,
        at_ms: u64,
    ) -> Result<NameOutcome, LedgerError> {
        self.inner.set_display_name(player, name, at_ms).await
    }

    async fn display_name(&self, player: &str) -> Result<Option<String>, LedgerError> {
        self.inner.display_name(player).await
    }
}
