//! Wall-clock time that advances with tokio's clock, so `tokio::time::pause()` and `advance()`
//! move alert timestamps, `for:` durations and group timers together in tests.

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// The wall time at construction plus however far tokio's clock has moved since.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    wall: DateTime<Utc>,
    mono: Instant,
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            wall: Utc::now(),
            mono: Instant::now(),
        }
    }

    /// A clock whose wall time starts at `wall` (tests pick the day and hour).
    #[cfg(test)]
    pub fn starting_at(wall: DateTime<Utc>) -> Self {
        Clock {
            wall,
            mono: Instant::now(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(self.mono.elapsed()).unwrap_or_default();
        self.wall + elapsed
    }

    pub fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }
}
