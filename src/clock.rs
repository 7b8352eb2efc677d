//! Time, a leaf module every layer reads it from. The engine never reads the system
//! clock directly: it asks a [`Clock`], so tests drive rounds with a [`ManualClock`] and
//! production uses [`SystemClock`]. Gateways and the HTTP surface stamp frames and check
//! token times with [`unix_now_ms`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of unix-millisecond timestamps.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the unix epoch.
    fn now_ms(&self) -> u64;
}

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        unix_now_ms()
    }
}

/// Milliseconds since the unix epoch from the system clock.
pub fn unix_now_ms() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("system clock is after 1970");
    u64::try_from(since_epoch.as_millis()).expect("milliseconds fit u64 until year 584 million")
}

/// A clock that moves only when told to. For tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicU64,
}

impl ManualClock {
    pub fn new(start_ms: u64) -> Self {
        ManualClock {
            now_ms: AtomicU64::new(start_ms),
        }
    }

    pub fn set(&self, now_ms: u64) {
        let before = self.now_ms.swap(now_ms, Ordering::SeqCst);
        assert!(now_ms >= before, "a clock never goes back");
    }

    pub fn advance(&self, by_ms: u64) {
        self.now_ms.fetch_add(by_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}
