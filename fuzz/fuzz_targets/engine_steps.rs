//! The engine's command handling: any bytes become a scenario of bets, cashouts,
//! advances, clock steps, ledger faults and a shutdown against `RoomCore` and a model
//! ledger, checked against the money invariants after every step
//! (`aloft::engine::invariants`, also run as a proptest by `cargo test`).

#![no_main]

use aloft::engine::invariants::{self, Scenario};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    invariants::run(&Scenario::decode(bytes));
});
