//! The `stats` block of a query answer (`stats=true` or `stats=all`), in Prometheus's shape:
//! `{"timings":{…},"samples":{"totalQueryableSamples":…,"peakSamples":…}}`.
//!
//! The engine is a black box to the API, so the figures are measured around it: a
//! [`CountingQuerier`] sits between the engine and the store and counts the samples and the
//! time of every read (the engine reads storage only in its prepare pass, so that time is the
//! query preparation), and the handler clocks the wait for a blocking thread and the call.

use crate::prom::encode::write_str;
use model::{Labels, Matcher, Querier, Series, StorageError};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A [`Querier`] that forwards to another and counts what the engine read through it.
pub struct CountingQuerier {
    inner: Arc<dyn Querier>,
    samples: AtomicU64,
    read_nanos: AtomicU64,
}

impl CountingQuerier {
    pub fn new(inner: Arc<dyn Querier>) -> Self {
        CountingQuerier {
            inner,
            samples: AtomicU64::new(0),
            read_nanos: AtomicU64::new(0),
        }
    }

    /// Samples returned by every `select` so far.
    pub fn samples(&self) -> u64 {
        self.samples.load(Ordering::Relaxed)
    }

    /// Time spent in the store so far.
    pub fn read_time(&self) -> Duration {
        Duration::from_nanos(self.read_nanos.load(Ordering::Relaxed))
    }

    fn clock<T>(&self, f: impl FnOnce() -> T) -> T {
        let began = Instant::now();
        let out = f();
        let nanos = u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.read_nanos.fetch_add(nanos, Ordering::Relaxed);
        out
    }
}

impl Querier for CountingQuerier {
    fn select(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<Series>, StorageError> {
        let series = self.clock(|| self.inner.select(mint, maxt, matchers))?;
        let n: usize = series.iter().map(|s| s.samples.len()).sum();
        self.samples.fetch_add(n as u64, Ordering::Relaxed);
        Ok(series)
    }

    fn series(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<Labels>, StorageError> {
        self.clock(|| self.inner.series(mint, maxt, matchers))
    }

    fn label_names(
        &self,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<String>, StorageError> {
        self.clock(|| self.inner.label_names(mint, maxt, matchers))
    }

    fn label_values(
        &self,
        name: &str,
        mint: i64,
        maxt: i64,
        matchers: &[Matcher],
    ) -> Result<Vec<String>, StorageError> {
        self.clock(|| self.inner.label_values(name, mint, maxt, matchers))
    }
}

/// What one query cost, as measured around the engine.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QueryStats {
    /// Waiting for a blocking thread.
    pub queue: Duration,
    /// The engine call, preparation and evaluation together.
    pub eval: Duration,
    /// The part of `eval` spent reading storage.
    pub preparation: Duration,
    /// Samples read from storage.
    pub loaded_samples: u64,
    /// Points in the answer.
    pub result_samples: u64,
}

impl QueryStats {
    /// Writes `,"stats":{…}` for appending inside the query's `data` object. The engine keeps
    /// every loaded sample until the answer is built, so the peak it holds is what it loaded
    /// plus what it produced.
    pub fn write(&self, out: &mut String) {
        let secs = |d: Duration| d.as_secs_f64();
        let inner = self.eval.saturating_sub(self.preparation);
        out.push_str(r#","stats":{"timings":{"#);
        let timings = [
            ("evalTotalTime", secs(self.eval)),
            // Sorting happens inside the engine's evaluation and is counted there.
            ("resultSortTime", 0.0),
            ("queryPreparationTime", secs(self.preparation)),
            ("innerEvalTime", secs(inner)),
            ("execQueueTime", secs(self.queue)),
            ("execTotalTime", secs(self.queue + self.eval)),
        ];
        for (i, (k, v)) in timings.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_str(out, k);
            let _ = write!(out, ":{v}");
        }
        let _ = write!(
            out,
            r#"}},"samples":{{"totalQueryableSamples":{},"peakSamples":{}}}}}"#,
            self.loaded_samples,
            self.loaded_samples + self.result_samples
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::{Appender, MatchOp, MemStorage, Sample};

    #[test]
    fn counting_querier_counts_selected_samples() {
        let store = Arc::new(MemStorage::new());
        let samples = (0..7).map(|i| Sample { t: i, v: 1.0 }).collect();
        store
            .append(&[Series {
                labels: Labels::from_pairs([("__name__", "up")]),
                samples,
            }])
            .unwrap();
        let q = CountingQuerier::new(store);
        let m = [Matcher::new(MatchOp::Equal, "__name__", "up").unwrap()];
        assert_eq!(q.select(0, 3, &m).unwrap()[0].samples.len(), 4);
        q.select(0, 100, &m).unwrap();
        assert_eq!(q.samples(), 11);
    }

    #[test]
    fn stats_block_has_prometheus_keys() {
        let mut s = String::from("{");
        QueryStats {
            queue: Duration::from_millis(1),
            eval: Duration::from_millis(3),
            preparation: Duration::from_millis(2),
            loaded_samples: 10,
            result_samples: 4,
        }
        .write(&mut s);
        s.push('}');
        let j: serde_json::Value = serde_json::from_str(&s[..].replacen("{,", "{", 1)).unwrap();
        let t = &j["stats"]["timings"];
        assert_eq!(t["evalTotalTime"], 0.003);
        assert_eq!(t["innerEvalTime"], 0.001);
        assert_eq!(t["execTotalTime"], 0.004);
        assert_eq!(j["stats"]["samples"]["totalQueryableSamples"], 10);
        assert_eq!(j["stats"]["samples"]["peakSamples"], 14);
    }
}
