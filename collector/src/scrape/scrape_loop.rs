//! The scrape loop of one target: scrape at the target's jittered phase of every interval,
//! turn the body into series (`process.rs`), ship them with the report series, and keep the
//! target's health for `/api/v1/targets`.
//!
//! When the target is removed (not when the agent shuts down) the loop writes end-of-run
//! staleness markers as Prometheus does: it waits two more intervals and a tenth, so a target
//! that only moved between discovery groups is scraped again by its new loop first, then
//! marks every series and the report series stale at the time its next scrape would have
//! been. On shutdown nothing is marked: a restarted agent continues the same series.

use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::config::PoolConfig;
use super::fetch::fetch;
use super::metrics::{Limit, ScrapeMetrics};
use super::process::{process, report_metadata, report_series, stale_report_series, SeriesCache};
use super::target::{first_scrape_delay, Target};
use crate::httpconf::HttpClient;
use crate::ship::MetricBatch;

/// A target's state as `/api/v1/targets` shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Health {
    /// `unknown` before the first scrape, then `up` or `down`.
    pub health: &'static str,
    pub last_error: String,
    pub last_scrape: Option<chrono::DateTime<chrono::Utc>>,
    /// Seconds.
    pub last_duration: f64,
}

impl Health {
    pub fn unknown() -> Health {
        Health {
            health: "unknown",
            ..Health::default()
        }
    }
}

/// What a loop needs besides its target.
#[derive(Clone, Debug)]
pub(crate) struct LoopContext {
    /// The job's client, with its TLS, proxy and credentials.
    pub client: HttpClient,
    pub pool: Arc<PoolConfig>,
    /// Set when the job has more targets than `target_limit`: every scrape fails with it.
    pub forced_error: Arc<Mutex<Option<String>>>,
    pub seed: u64,
    pub output: mpsc::Sender<MetricBatch>,
    pub metrics: Arc<ScrapeMetrics>,
}

/// Runs until `stop` fires (the target was removed, or `shutdown`), then writes end-of-run
/// staleness markers unless the agent is shutting down.
pub(crate) async fn run(
    ctx: LoopContext,
    target: Arc<Target>,
    health: Arc<Mutex<Health>>,
    stop: CancellationToken,
    shutdown: CancellationToken,
) {
    let delay = first_scrape_delay(target.hash(), ctx.seed, target.interval, SystemTime::now());
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + delay, target.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut cache = SeriesCache::default();
    let mut scraped = false;
    let mut last_start: Option<Instant> = None;
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let t = now_ms();
        let started = Instant::now();
        if let Some(last) = last_start.replace(started) {
            ctx.metrics
                .observe_interval(target.interval, started.duration_since(last));
        }
        let forced = lock(&ctx.forced_error).clone();
        let fetched = match forced {
            Some(error) => Err(error),
            None => tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                r = fetch(&ctx.client, &target.url, target.timeout, ctx.pool.body_size_limit) => r,
            },
        };
        let out = process(&ctx.pool, &target.labels, fetched, t, &mut cache);
        let duration = started.elapsed().as_secs_f64();
        let up = out.error.is_none();
        if let Some(error) = &out.error {
            tracing::debug!(target = %target.url, %error, "scrape failed");
            if let Some(limit) = Limit::of_error(error) {
                ctx.metrics.limit_exceeded(limit);
            }
        }
        *lock(&health) = Health {
            health: if up { "up" } else { "down" },
            last_error: out.error.unwrap_or_default(),
            last_scrape: Some(chrono::DateTime::<chrono::Utc>::from(
                SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(t.max(0) as u64),
            )),
            last_duration: duration,
        };
        let mut series = out.series;
        series.extend(report_series(&target.labels, t, up, duration, out.counts));
        let mut metadata = out.metadata;
        metadata.extend(report_metadata());
        if ctx
            .output
            .send(MetricBatch { series, metadata })
            .await
            .is_err()
        {
            return;
        }
        scraped = true;
    }
    if scraped && !shutdown.is_cancelled() {
        end_of_run_staleness(&ctx, &target, &mut cache, &mut ticker, &shutdown).await;
    }
}

async fn end_of_run_staleness(
    ctx: &LoopContext,
    target: &Target,
    cache: &mut SeriesCache,
    ticker: &mut tokio::time::Interval,
    shutdown: &CancellationToken,
) {
    let stale_at = tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = ticker.tick() => now_ms(),
    };
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = ticker.tick() => {}
    }
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = tokio::time::sleep(target.interval / 10) => {}
    }
    let mut series = cache.all_stale(stale_at);
    series.extend(stale_report_series(&target.labels, stale_at));
    tracing::debug!(target = %target.url, series = series.len(), "target gone, series marked stale");
    let _ = ctx
        .output
        .send(MetricBatch {
            series,
            metadata: Vec::new(),
        })
        .await;
}

/// Locks a mutex whose holders never panic while holding it; a poisoned lock still holds
/// consistent plain data, so it is used as is.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
