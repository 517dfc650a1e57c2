//! The store's background thread: commits pending entries and trims the WAL every commit
//! interval, and applies retention every [`RETENTION_CHECK_INTERVAL`].

use super::{unix_now_ns, Core, RETENTION_CHECK_INTERVAL};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

/// The running thread and the flag that stops it.
pub(super) struct Background {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    pub fn start(core: Arc<Core>) -> Background {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("logstore-commit".into())
            .spawn(move || run(&core, &flag));
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                // Queries still commit and a clean stop still checkpoints; only the WAL's
                // trimming between them is lost.
                tracing::error!(error = %e, "could not start the log store's commit thread");
                None
            }
        };
        Background { stop, thread }
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        let (lock, cvar) = &*self.stop;
        if let Ok(mut stopped) = lock.lock() {
            *stopped = true;
        }
        cvar.notify_all();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the log store's commit thread panicked");
            }
        }
    }
}

fn run(core: &Core, stop: &(Mutex<bool>, Condvar)) {
    let (lock, cvar) = stop;
    let mut last_retention = Instant::now();
    loop {
        let Ok(stopped) = lock.lock() else { return };
        let Ok((stopped, _)) =
            cvar.wait_timeout_while(stopped, core.options.commit_interval, |s| !*s)
        else {
            return;
        };
        if *stopped {
            return;
        }
        drop(stopped);
        if let Err(e) = core.checkpoint() {
            tracing::error!(error = %e, "log store commit failed; the WAL keeps the entries");
        }
        if last_retention.elapsed() >= RETENTION_CHECK_INTERVAL {
            last_retention = Instant::now();
            if let Err(e) = core.apply_retention(unix_now_ns()) {
                tracing::error!(error = %e, "log retention failed");
            }
        }
        crate::line_index::forget_idle(Instant::now());
    }
}
