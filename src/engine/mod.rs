//! placeholder: being written
pub mod clock;
pub use clock::{Clock, ManualClock, SystemClock};
