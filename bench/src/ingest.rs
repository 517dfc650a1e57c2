//! Feeding the generated data to the servers by remote write, in time order: a window of
//! scrapes is cut into requests of about `batch` samples, sent to every server (each with a
//! few requests in flight), and the next window goes out only once every server
//! acknowledged the last one, so no series is ever sent out of order.

use crate::gen::{Generator, Spec};
use crate::http::{write_body, Client};
use anyhow::Context;
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Scrapes per window: each request carries this many samples of each of its series,
    /// as a remote-write sender catching up on a backlog does.
    pub window: usize,
    /// About this many samples per request.
    pub batch: usize,
    /// Requests in flight per server, like remote write's shards.
    pub concurrency: usize,
}

/// What one ingest sent.
#[derive(Debug, Clone, Copy)]
pub struct Ingested {
    pub samples: u64,
    pub requests: u64,
    pub wall: Duration,
}

/// Sends all of `spec`'s data to each of `bases` (concurrently) and returns once all of it
/// was acknowledged. The data is generated on a blocking thread while earlier windows are
/// in flight.
pub async fn ingest(
    client: &Client,
    spec: Spec,
    bases: &[String],
    opts: Options,
) -> anyhow::Result<Ingested> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(u64, Vec<Bytes>)>(2);
    let producer = tokio::task::spawn_blocking(move || {
        let mut gen = Generator::new(spec);
        while let Some(window) = gen.next_window(opts.window) {
            let per_series = window.first().map_or(1, |s| s.samples.len().max(1));
            let samples = (window.len() * per_series) as u64;
            let series_per_request = (opts.batch / per_series).max(1);
            let mut bodies = Vec::new();
            let mut rest = window;
            while !rest.is_empty() {
                let tail = rest.split_off(series_per_request.min(rest.len()));
                bodies.push(write_body(rest));
                rest = tail;
            }
            if tx.blocking_send((samples, bodies)).is_err() {
                break; // the sender gave up after an error
            }
        }
    });
    let started = Instant::now();
    let total = spec.samples();
    let (mut samples, mut requests, mut reported) = (0u64, 0u64, 0u64);
    while let Some((n, bodies)) = rx.recv().await {
        let bodies = Arc::new(bodies);
        let mut servers = JoinSet::new();
        for base in bases {
            let (client, base, bodies) = (client.clone(), base.clone(), bodies.clone());
            servers.spawn(async move { send_window(&client, &base, &bodies, opts).await });
        }
        while let Some(r) = servers.join_next().await {
            r.context("sender task")??;
        }
        samples += n;
        requests += bodies.len() as u64;
        // Progress on stderr at every tenth of the data, so a slow run shows it is alive.
        if samples * 10 / total.max(1) > reported {
            reported = samples * 10 / total.max(1);
            eprintln!(
                "  ingested {samples} of {total} samples ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    producer.await.context("generator thread")?;
    Ok(Ingested {
        samples,
        requests,
        wall: started.elapsed(),
    })
}

/// Sends one window's requests to one server, at most `concurrency` at a time.
async fn send_window(
    client: &Client,
    base: &str,
    bodies: &[Bytes],
    opts: Options,
) -> anyhow::Result<()> {
    let mut in_flight = JoinSet::new();
    for body in bodies {
        if in_flight.len() >= opts.concurrency.max(1) {
            if let Some(r) = in_flight.join_next().await {
                r.context("write task")??;
            }
        }
        let (client, base, body) = (client.clone(), base.to_string(), body.clone());
        in_flight.spawn(async move { client.write(&base, body).await });
    }
    while let Some(r) = in_flight.join_next().await {
        r.context("write task")??;
    }
    Ok(())
}
