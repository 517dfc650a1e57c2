//! Targets: from discovered label sets (a static config's addresses, a discovered pod) to the
//! labels and URL a scrape loop uses, following Prometheus's `PopulateLabels`, and each
//! target's jittered place in the interval.
//!
//! The steps, in order: the group's labels under the target's own; the job's defaults where
//! absent (`job`, `__scheme__`, `__metrics_path__`, `__scrape_interval__`,
//! `__scrape_timeout__`, `__param_<name>`), which is the set `/api/v1/targets` shows as
//! `discoveredLabels`; a default port on `__address__` (Prometheus 2.42 still adds one);
//! `instance` from `__address__` when unset; the interval and timeout labels read back; every
//! `__`-prefixed label removed.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use model::Labels;

use super::config::PoolConfig;

/// Where a group of targets came from and what they share; a discovery mechanism replaces
/// the whole group whenever it changes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TargetGroup {
    /// The group's identity within its job, e.g. `static/0` or `pod/<namespace>/<name>`.
    pub source: String,
    /// One label set per target; each has `__address__`.
    pub targets: Vec<Labels>,
    /// Labels every target of the group gets unless it has its own.
    pub labels: Labels,
}

pub(crate) const ADDRESS: &str = "__address__";
const SCHEME: &str = "__scheme__";
const METRICS_PATH: &str = "__metrics_path__";
const SCRAPE_INTERVAL: &str = "__scrape_interval__";
const SCRAPE_TIMEOUT: &str = "__scrape_timeout__";
const PARAM_PREFIX: &str = "__param_";

/// A target ready to scrape.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Target {
    /// The labels every scraped series and report series gets (`job`, `instance`, …).
    pub labels: Labels,
    /// The labels before relabeling, for `/api/v1/targets`.
    pub discovered: Labels,
    pub url: reqwest::Url,
    pub interval: Duration,
    pub timeout: Duration,
}

impl Target {
    /// A stable identity of the target (labels and URL), FNV-1a as Prometheus hashes it; it
    /// places the target in its interval and tells a re-discovered target from a new one.
    pub fn hash(&self) -> u64 {
        let mut h = Fnv::new();
        for l in self.labels.iter() {
            h.write(l.name.as_bytes());
            h.write(&[0xff]);
            h.write(l.value.as_bytes());
            h.write(&[0xff]);
        }
        h.write(self.url.as_str().as_bytes());
        h.0
    }
}

/// FNV-1a, 64 bits: cheap and stable across versions, unlike std's `DefaultHasher`.
pub(crate) struct Fnv(pub u64);

impl Fnv {
    pub fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The seed that spreads the same target differently on different agents: a hash of the
/// node name, as Prometheus hashes its hostname and external labels.
pub(crate) fn jitter_seed(node_name: &str) -> u64 {
    let mut h = Fnv::new();
    h.write(node_name.as_bytes());
    h.0
}

/// How long from `now` until the target's first scrape: Prometheus's `scrapeLoop.offset`.
/// Every target scrapes at the same phase of each interval (a fixed offset from multiples of
/// the interval on the wall clock), so scrapes of many targets spread evenly and a restarted
/// agent scrapes a target at the same moments as before.
pub(crate) fn first_scrape_delay(
    hash: u64,
    seed: u64,
    interval: Duration,
    now: SystemTime,
) -> Duration {
    let iv = interval.as_nanos().max(1);
    let now_ns = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let base = iv - now_ns % iv;
    let offset = u128::from(hash ^ seed) % iv;
    let mut next = base + offset;
    if next > iv {
        next -= iv;
    }
    Duration::from_nanos(u64::try_from(next).unwrap_or(u64::MAX))
}

/// Checks a static target address: `host:port` or `host`, no scheme or path.
pub(crate) fn check_address(address: &str) -> Result<(), String> {
    if address.is_empty() {
        return Err("empty target address".into());
    }
    if address.contains('/') {
        return Err(format!(
            "{address:?} is not a valid hostname: it has a path or scheme"
        ));
    }
    Ok(())
}

/// The labels before relabeling: the group's under the target's, then the job's defaults.
pub(crate) fn discovered_labels(pool: &PoolConfig, group: &Labels, target: &Labels) -> Labels {
    let mut pairs: BTreeMap<String, String> = group
        .iter()
        .chain(target.iter())
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect();
    let mut default = |name: &str, value: String| {
        pairs.entry(name.to_string()).or_insert(value);
    };
    default("job", pool.job_name.clone());
    default(SCHEME, pool.scheme.clone());
    default(METRICS_PATH, pool.metrics_path.clone());
    default(SCRAPE_INTERVAL, format_duration(pool.interval));
    default(SCRAPE_TIMEOUT, format_duration(pool.timeout));
    for (name, values) in &pool.params {
        if let Some(first) = values.first() {
            default(&format!("{PARAM_PREFIX}{name}"), first.clone());
        }
    }
    Labels::from_pairs(pairs)
}

/// Turns labels after relabeling into a target; `Err` names why they cannot be scraped.
pub(crate) fn finish_target(
    pool: &PoolConfig,
    discovered: Labels,
    relabeled: Labels,
) -> Result<Target, String> {
    let Some(address) = relabeled.get(ADDRESS) else {
        return Err("no address".into());
    };
    check_address(address)?;
    let scheme = relabeled.get(SCHEME).unwrap_or(&pool.scheme).to_string();
    let address = with_default_port(address, &scheme);
    let interval = label_duration(&relabeled, SCRAPE_INTERVAL, pool.interval)?;
    let timeout = label_duration(&relabeled, SCRAPE_TIMEOUT, pool.timeout)?;
    if interval.is_zero() || timeout.is_zero() {
        return Err("scrape interval and timeout must be positive".into());
    }
    if timeout > interval {
        return Err(format!(
            "scrape timeout {} greater than scrape interval {}",
            format_duration(timeout),
            format_duration(interval)
        ));
    }
    let path = relabeled.get(METRICS_PATH).unwrap_or(&pool.metrics_path);
    let mut url = reqwest::Url::parse(&format!("{scheme}://{address}{path}"))
        .map_err(|e| format!("invalid target url {scheme}://{address}{path}: {e}"))?;
    let mut params = pool.params.clone();
    for l in relabeled.iter() {
        if let Some(name) = l.name.strip_prefix(PARAM_PREFIX) {
            let values = params.entry(name.to_string()).or_default();
            match values.first_mut() {
                Some(first) => *first = l.value.clone(),
                None => values.push(l.value.clone()),
            }
        }
    }
    if !params.is_empty() {
        let mut query = url.query_pairs_mut();
        for (name, values) in &params {
            for v in values {
                query.append_pair(name, v);
            }
        }
    }
    let labels = Labels::from_pairs(
        relabeled
            .iter()
            .filter(|l| !l.name.starts_with("__"))
            .map(|l| (l.name.clone(), l.value.clone()))
            .chain(
                relabeled
                    .get("instance")
                    .is_none()
                    .then(|| ("instance".to_string(), address.clone())),
            ),
    );
    Ok(Target {
        labels,
        discovered,
        url,
        interval,
        timeout,
    })
}

/// `host` becomes `host:80` (or `:443` for https), as Prometheus 2.42's `addPort` does.
fn with_default_port(address: &str, scheme: &str) -> String {
    let has_port = match address.rsplit_once(':') {
        // An IPv6 literal without a port is `[::1]`; with one, `[::1]:80`.
        Some((host, port)) => {
            !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!host.contains(':') || host.ends_with(']'))
        }
        None => false,
    };
    if has_port {
        return address.to_string();
    }
    let port = if scheme == "https" { 443 } else { 80 };
    format!("{address}:{port}")
}

fn label_duration(labels: &Labels, name: &str, default: Duration) -> Result<Duration, String> {
    match labels.get(name) {
        None => Ok(default),
        Some(text) => model::parse_duration(text).map_err(|e| format!("{name}: {e}")),
    }
}

/// A duration as Prometheus prints one (`model.Duration`): `1m30s`, `15s`, `500ms`, `0s`.
pub(crate) fn format_duration(d: Duration) -> String {
    let mut ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("y", 365 * 24 * 3_600_000),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::config::ScrapeFile;

    fn pool(yaml: &str) -> PoolConfig {
        ScrapeFile::parse(yaml).unwrap().pools().unwrap().remove(0)
    }

    fn target(
        pool: &PoolConfig,
        group: &[(&str, &str)],
        own: &[(&str, &str)],
    ) -> Result<Target, String> {
        let d = discovered_labels(
            pool,
            &Labels::from_pairs(group.iter().copied()),
            &Labels::from_pairs(own.iter().copied()),
        );
        finish_target(pool, d.clone(), d)
    }

    #[test]
    fn static_target_gets_job_instance_and_url() {
        let p = pool("scrape_configs:\n  - job_name: app\n    scrape_interval: 15s\n    params: {module: [a, b]}\n");
        let t = target(&p, &[("team", "x")], &[("__address__", "10.0.0.1:8080")]).unwrap();
        assert_eq!(
            t.labels.to_string(),
            r#"{instance="10.0.0.1:8080", job="app", team="x"}"#
        );
        assert_eq!(
            t.url.as_str(),
            "http://10.0.0.1:8080/metrics?module=a&module=b"
        );
        assert_eq!(
            t.discovered.to_string(),
            r#"{__address__="10.0.0.1:8080", __metrics_path__="/metrics", __param_module="a", __scheme__="http", __scrape_interval__="15s", __scrape_timeout__="10s", job="app", team="x"}"#
        );
        assert_eq!(t.interval, Duration::from_secs(15));
    }

    #[test]
    fn special_labels_override_the_job() {
        let p = pool("scrape_configs:\n  - job_name: app\n    scrape_interval: 15s\n");
        let t = target(
            &p,
            &[],
            &[
                ("__address__", "h"),
                ("__scheme__", "https"),
                ("__metrics_path__", "/m"),
                ("__param_x", "1 2"),
                ("__scrape_interval__", "30s"),
                ("instance", "mine"),
            ],
        )
        .unwrap();
        // The URL leaves out the scheme's own port; the request goes to the same place.
        assert_eq!(t.url.as_str(), "https://h/m?x=1+2");
        assert_eq!(t.labels.get("instance"), Some("mine"));
        assert_eq!(t.interval, Duration::from_secs(30));
        let bare = target(&p, &[], &[("__address__", "h")]).unwrap();
        assert_eq!(bare.labels.get("instance"), Some("h:80"));
        assert_eq!(with_default_port("[::1]", "http"), "[::1]:80");
        assert_eq!(with_default_port("[::1]:9", "http"), "[::1]:9");
        let err = target(
            &p,
            &[],
            &[("__address__", "h:1"), ("__scrape_timeout__", "1m")],
        )
        .unwrap_err();
        assert!(err.contains("greater than"), "{err}");
    }

    #[test]
    fn jitter_is_stable_and_within_the_interval() {
        let iv = Duration::from_secs(15);
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let a = first_scrape_delay(42, jitter_seed("n1"), iv, now);
        assert!(a <= iv);
        assert_eq!(a, first_scrape_delay(42, jitter_seed("n1"), iv, now));
        // The phase on the wall clock is the same whatever the start time.
        let later = now + Duration::from_millis(4_321);
        let b = first_scrape_delay(42, jitter_seed("n1"), iv, later);
        let phase = |start: SystemTime, d: Duration| {
            (start + d)
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
                % iv.as_nanos()
        };
        assert_eq!(phase(now, a), phase(later, b));
        assert_ne!(a, first_scrape_delay(43, jitter_seed("n1"), iv, now));
    }

    #[test]
    fn durations_print_like_prometheus() {
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }
}
