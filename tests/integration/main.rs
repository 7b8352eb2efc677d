//! aloft's integration tests, one module per area, in one test binary: each binary
//! links the whole library again, and a dozen of them were a third of a cold build.
//! `tests/metrics/` stays apart: it reads the process's global metrics recorder and
//! expects every series at 0 from start, which other tests in the same process would move.
//!
//! Run one area with a filter: `cargo test --release --test integration cluster::`.

mod abuse;
mod admin;
mod admission;
mod auth_message;
mod bad_input;
mod cancel;
mod chat;
mod cluster;
mod common;
mod fair;
mod game;
mod kill_restart;
mod lifecycle;
mod my_bets;
mod operator;
mod recovery;
mod web_fair;
mod ws_conformance;
