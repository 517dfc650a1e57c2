//! The benchmark data: Kubernetes nodes, each a node_exporter, a kubelet cAdvisor endpoint and
//! an application with classic histograms (314 series per node), scraped every interval with
//! per-target phases and a few milliseconds of jitter, produced window by window as
//! remote-write series in time order.
//!
//! Everything depends only on the seed and the [`Spec`], so both servers of a run receive the
//! same bytes. No timestamp is a whole second or `.750` past one (the time the query sets
//! evaluate at), so the closed (2.x) and left-open (3.x) window rules never decide an answer.

mod rng;
mod shapes;

pub use rng::Rng;
use shapes::Target;

use model::wire::prom::{Label, TimeSeries, WireSample};

/// The seed every benchmark uses unless told otherwise.
pub const DEFAULT_SEED: u64 = 0x000B_32C4_0042;

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Exactly this many series (the last node is cut short).
    pub series: usize,
    /// Start of the first scrape interval, ms since the epoch (floored to a whole second).
    pub start_ms: i64,
    pub interval_ms: i64,
    /// Scrapes per target.
    pub scrapes: usize,
    pub seed: u64,
}

impl Spec {
    /// End of the last scrape interval: every timestamp is below it.
    pub fn end_ms(&self) -> i64 {
        self.start() + self.scrapes as i64 * self.interval_ms
    }

    pub fn samples(&self) -> u64 {
        self.series as u64 * self.scrapes as u64
    }

    fn start(&self) -> i64 {
        self.start_ms.div_euclid(1000) * 1000
    }
}

/// Produces the data of a [`Spec`] in windows of whole scrapes.
#[derive(Debug)]
pub struct Generator {
    spec: Spec,
    targets: Vec<Target>,
    next_scrape: usize,
}

impl Generator {
    pub fn new(spec: Spec) -> Generator {
        let mut rng = Rng::new(spec.seed);
        let mut targets = Vec::new();
        let mut count = 0;
        let mut host = 0;
        while count < spec.series {
            let mut node_rng = rng.fork();
            let iv = spec.interval_ms;
            for build in [shapes::node_exporter, shapes::application, shapes::cadvisor] {
                if count >= spec.series {
                    break;
                }
                let mut t = build(&mut node_rng, host, iv);
                t.series.truncate(spec.series - count);
                count += t.series.len();
                targets.push(t);
            }
            host += 1;
        }
        Generator {
            spec,
            targets,
            next_scrape: 0,
        }
    }

    /// The next `scrapes` scrapes of every target (fewer at the end), one [`TimeSeries`]
    /// per series; `None` once all scrapes were produced.
    pub fn next_window(&mut self, scrapes: usize) -> Option<Vec<TimeSeries>> {
        let first = self.next_scrape;
        let last = (first + scrapes.max(1)).min(self.spec.scrapes);
        if first >= last {
            return None;
        }
        self.next_scrape = last;
        let (start, iv) = (self.spec.start(), self.spec.interval_ms);
        let mut out = Vec::with_capacity(self.spec.series);
        let mut values = Vec::new();
        for target in &mut self.targets {
            let base = out.len();
            out.extend(target.series.iter().map(|s| {
                TimeSeries {
                    labels: s
                        .labels
                        .iter()
                        .map(|(name, value)| Label {
                            name: name.clone(),
                            value: value.clone(),
                        })
                        .collect(),
                    samples: Vec::with_capacity(last - first),
                    exemplars: Vec::new(),
                }
            }));
            for i in first..last {
                let t = target.scrape_time(start, iv, i);
                values.clear();
                target.scrape(t, &mut values);
                for (ts, &value) in out[base..].iter_mut().zip(&values) {
                    ts.samples.push(WireSample {
                        value,
                        timestamp: t,
                    });
                }
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn spec(series: usize) -> Spec {
        Spec {
            series,
            start_ms: 1_700_000_123_456,
            interval_ms: 15_000,
            scrapes: 40,
            seed: DEFAULT_SEED,
        }
    }

    fn all(mut g: Generator, window: usize) -> Vec<TimeSeries> {
        let mut series: Vec<TimeSeries> = Vec::new();
        while let Some(w) = g.next_window(window) {
            if series.is_empty() {
                series = w;
            } else {
                for (s, more) in series.iter_mut().zip(w) {
                    s.samples.extend(more.samples);
                }
            }
        }
        series
    }

    #[test]
    fn same_seed_same_data_whatever_the_window() {
        let a = all(Generator::new(spec(700)), 4);
        let b = all(Generator::new(spec(700)), 7);
        assert_eq!(a, b);
        let other = all(
            Generator::new(Spec {
                seed: 1,
                ..spec(700)
            }),
            4,
        );
        assert_ne!(a, other);
    }

    #[test]
    fn exact_series_count_with_unique_sorted_label_sets() {
        let series = all(Generator::new(spec(1000)), 40);
        assert_eq!(series.len(), 1000);
        let mut seen = HashSet::new();
        for s in &series {
            let pairs: Vec<_> = s.labels.iter().map(|l| (&l.name, &l.value)).collect();
            assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0), "{pairs:?}");
            assert!(seen.insert(pairs));
            assert_eq!(s.samples.len(), 40);
        }
    }

    #[test]
    fn timestamps_are_off_boundary_in_order_and_in_span() {
        let sp = spec(1000);
        for s in all(Generator::new(sp), 5) {
            for w in s.samples.windows(2) {
                assert!(w[1].timestamp > w[0].timestamp);
            }
            for x in &s.samples {
                let ms = x.timestamp.rem_euclid(1000);
                assert!((80..=420).contains(&ms), "{} is on a boundary", x.timestamp);
                assert!(x.timestamp >= 1_700_000_123_000 && x.timestamp < sp.end_ms());
            }
        }
    }

    #[test]
    fn counters_never_decrease_and_cpu_seconds_keep_two_decimals() {
        for s in all(Generator::new(spec(1000)), 40) {
            let name = &s.labels[0].value;
            if name.ends_with("_total") || name.ends_with("_bucket") {
                assert!(
                    s.samples.windows(2).all(|w| w[1].value >= w[0].value),
                    "{name}"
                );
            }
            if name == "node_cpu_seconds_total" {
                for x in &s.samples {
                    // The shortest text that reads back as the value, as Prometheus prints it.
                    let text = x.value.to_string();
                    let decimals = text.split('.').nth(1).map_or(0, str::len);
                    assert!(decimals <= 2, "{text}");
                }
            }
        }
    }
}
