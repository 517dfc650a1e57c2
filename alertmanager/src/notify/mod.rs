//! The notification pipeline a group flush runs for its receiver: per integration, dedup against
//! the notification log, drop resolved alerts the integration does not want, send with retries
//! (exponential backoff, retryable errors only, a 429's `Retry-After` honoured), and log
//! success. Integrations (`webhook`, `slack`) run concurrently; the flush succeeds only if every
//! one did.
//!
//! Inhibition, time intervals and silences are applied by the dispatcher before the pipeline,
//! where Alertmanager runs them as the stages before these.

mod data;
mod http;
mod nflog;
mod slack;
mod tmpl;
mod webhook;

use crate::config::AlertmanagerConfig;
use chrono::{DateTime, Utc};
use model::Labels;
use nflog::LogKey;
pub(crate) use nflog::NotificationLog;
use slack::SlackNotifier;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
pub(crate) use tmpl::NotificationTemplates;
use tokio::task::JoinSet;
use webhook::WebhookNotifier;

/// First retry delay (cenkalti/backoff's default, which Alertmanager uses).
const BACKOFF_INITIAL: Duration = Duration::from_millis(500);
/// Growth of the delay per attempt.
const BACKOFF_MULTIPLIER: f64 = 1.5;
/// Cap of the delay between two attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// An alert as a flush hands it to integrations: `ends_at` is `None` unless resolved.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NotifyAlert {
    pub labels: Labels,
    pub annotations: Labels,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub generator_url: String,
    pub fingerprint: u64,
}

impl NotifyAlert {
    pub fn is_resolved(&self) -> bool {
        self.ends_at.is_some()
    }
}

/// What integrations know about the flush besides the alerts.
#[derive(Clone, Debug)]
pub(crate) struct FlushContext {
    pub receiver: String,
    pub group_key: String,
    pub group_labels: Labels,
    pub external_url: String,
    pub repeat_interval: Duration,
}

/// A failed send, whether trying again may help, and when the endpoint asked to be retried.
#[derive(Debug)]
pub(crate) struct NotifyError {
    pub message: String,
    pub retryable: bool,
    /// A 429's `Retry-After`: used instead of the backoff delay for the next attempt.
    pub retry_after: Option<Duration>,
}

impl NotifyError {
    pub fn retryable(message: String) -> Self {
        NotifyError {
            message,
            retryable: true,
            retry_after: None,
        }
    }
    pub fn permanent(message: String) -> Self {
        NotifyError {
            message,
            retryable: false,
            retry_after: None,
        }
    }
}

/// The integrations this build can send with.
#[derive(Debug)]
pub(crate) enum Notifier {
    Webhook(Box<WebhookNotifier>),
    Slack(Box<SlackNotifier>),
    #[cfg(test)]
    Recorder(test_support::Recorder),
}

impl Notifier {
    fn send_resolved(&self) -> bool {
        match self {
            Notifier::Webhook(w) => w.send_resolved(),
            Notifier::Slack(s) => s.send_resolved(),
            #[cfg(test)]
            Notifier::Recorder(r) => r.send_resolved,
        }
    }

    async fn notify(&self, ctx: &FlushContext, alerts: &[NotifyAlert]) -> Result<(), NotifyError> {
        match self {
            Notifier::Webhook(w) => w.notify(ctx, alerts).await,
            Notifier::Slack(s) => s.notify(ctx, alerts).await,
            #[cfg(test)]
            Notifier::Recorder(r) => r.notify(ctx, alerts),
        }
    }
}

/// One integration of a receiver, named as the notification log keys it.
#[derive(Debug)]
pub(crate) struct Integration {
    pub name: &'static str,
    pub index: usize,
    pub notifier: Notifier,
}

/// The receivers' integrations and the notification log.
#[derive(Debug)]
pub(crate) struct Pipeline {
    receivers: HashMap<String, Vec<Arc<Integration>>>,
    nflog: Arc<NotificationLog>,
}

impl Pipeline {
    pub fn build(config: &AlertmanagerConfig) -> Pipeline {
        let global_http = config.global.http_config.as_ref();
        // The files parsed when the config was loaded; failing now means one changed since.
        let templates = Arc::new(config.notification_templates().unwrap_or_else(|error| {
            tracing::error!(%error, "notification templates failed to load; using the defaults only");
            NotificationTemplates::defaults()
        }));
        let receivers = config
            .receivers
            .iter()
            .map(|r| {
                let webhooks = r.webhook_configs.iter().enumerate().map(|(index, w)| {
                    let webhook = WebhookNotifier::new(w.clone(), global_http);
                    Arc::new(Integration {
                        name: "webhook",
                        index,
                        notifier: Notifier::Webhook(Box::new(webhook)),
                    })
                });
                let slacks = r.slack_configs.iter().enumerate().map(|(index, s)| {
                    let slack =
                        SlackNotifier::new(s.clone(), &config.global, Arc::clone(&templates));
                    Arc::new(Integration {
                        name: "slack",
                        index,
                        notifier: Notifier::Slack(Box::new(slack)),
                    })
                });
                (r.name.clone(), webhooks.chain(slacks).collect())
            })
            .collect();
        Pipeline::from_receivers(receivers)
    }

    pub fn from_receivers(receivers: HashMap<String, Vec<Arc<Integration>>>) -> Pipeline {
        Pipeline {
            receivers,
            nflog: Arc::new(NotificationLog::default()),
        }
    }

    /// Replaces the (in-memory) notification log, e.g. with one kept in the data directory.
    /// Records to (and checks) `nflog`, which outlives the pipeline across config reloads.
    pub fn with_nflog(mut self, nflog: Arc<NotificationLog>) -> Pipeline {
        self.nflog = nflog;
        self
    }

    /// Runs every integration of `ctx.receiver` on `alerts`; true when all succeeded.
    pub async fn exec(
        &self,
        ctx: Arc<FlushContext>,
        alerts: Arc<Vec<NotifyAlert>>,
        now: DateTime<Utc>,
    ) -> bool {
        let Some(integrations) = self.receivers.get(&ctx.receiver) else {
            tracing::error!(receiver = %ctx.receiver, "no such receiver");
            return false;
        };
        let mut tasks = JoinSet::new();
        for integration in integrations {
            tasks.spawn(run_integration(
                Arc::clone(integration),
                Arc::clone(&ctx),
                Arc::clone(&alerts),
                Arc::clone(&self.nflog),
                now,
            ));
        }
        let mut all_ok = true;
        while let Some(result) = tasks.join_next().await {
            all_ok &= result.unwrap_or(false);
        }
        all_ok
    }
}

/// Dedup → filter → retry → log, for one integration.
async fn run_integration(
    integration: Arc<Integration>,
    ctx: Arc<FlushContext>,
    alerts: Arc<Vec<NotifyAlert>>,
    nflog: Arc<NotificationLog>,
    now: DateTime<Utc>,
) -> bool {
    let send_resolved = integration.notifier.send_resolved();
    let (resolved, firing): (Vec<&NotifyAlert>, Vec<&NotifyAlert>) =
        alerts.iter().partition(|a| a.is_resolved());
    let firing_set: BTreeSet<u64> = firing.iter().map(|a| a.fingerprint).collect();
    let resolved_set: BTreeSet<u64> = resolved.iter().map(|a| a.fingerprint).collect();
    let key = LogKey {
        group_key: ctx.group_key.clone(),
        receiver: ctx.receiver.clone(),
        integration: integration.name.to_string(),
        index: integration.index,
    };
    if !nflog.needs_update(
        &key,
        &firing_set,
        &resolved_set,
        send_resolved,
        ctx.repeat_interval,
        now,
    ) {
        return true;
    }
    let to_send: Vec<NotifyAlert> = if send_resolved {
        alerts.to_vec()
    } else {
        firing.into_iter().cloned().collect()
    };
    // Nothing the integration wants to hear: count it as sent so the log moves on.
    if !to_send.is_empty() {
        if let Err(error) = send_with_retry(&integration, &ctx, &to_send).await {
            tracing::error!(
                receiver = %ctx.receiver,
                integration = integration.name,
                index = integration.index,
                group_key = %ctx.group_key,
                error = %error.message,
                "notify failed"
            );
            return false;
        }
    }
    nflog.log(key, firing_set, resolved_set, ctx.repeat_interval, now);
    true
}

async fn send_with_retry(
    integration: &Integration,
    ctx: &FlushContext,
    alerts: &[NotifyAlert],
) -> Result<(), NotifyError> {
    let mut delay = BACKOFF_INITIAL;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match integration.notifier.notify(ctx, alerts).await {
            Ok(()) => {
                tracing::debug!(receiver = %ctx.receiver, integration = integration.name, attempts, "notify success");
                return Ok(());
            }
            Err(e) if e.retryable => {
                tracing::warn!(
                    receiver = %ctx.receiver,
                    integration = integration.name,
                    attempts,
                    error = %e.message,
                    "notify attempt failed, will retry"
                );
                // The endpoint's own request wins over the backoff (capped like it); the
                // flush's deadline bounds the whole loop either way.
                let wait = e
                    .retry_after
                    .map_or_else(|| jittered(delay), |d| d.min(BACKOFF_MAX));
                tokio::time::sleep(wait).await;
                delay = delay.mul_f64(BACKOFF_MULTIPLIER).min(BACKOFF_MAX);
            }
            Err(e) => return Err(e),
        }
    }
}

/// `delay` ± 50%, so many groups failing together do not retry in lockstep.
fn jittered(delay: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let factor = 0.5 + (random % 1_000_000) as f64 / 1_000_000.0;
    delay.mul_f64(factor)
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A recording integration for dispatcher tests: keeps every call, fails on demand.

    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    #[derive(Debug, Default)]
    pub struct Calls {
        pub sent: Mutex<Vec<(String, Vec<NotifyAlert>)>>,
        /// How many of the next calls fail with a retryable error.
        pub fail_next: AtomicUsize,
    }

    #[derive(Debug)]
    pub struct Recorder {
        pub send_resolved: bool,
        pub calls: Arc<Calls>,
    }

    impl Recorder {
        pub fn notify(
            &self,
            ctx: &FlushContext,
            alerts: &[NotifyAlert],
        ) -> Result<(), NotifyError> {
            let fail = self
                .calls
                .fail_next
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if fail {
                return Err(NotifyError::retryable("injected failure".into()));
            }
            self.calls
                .sent
                .lock()
                .unwrap()
                .push((ctx.group_key.clone(), alerts.to_vec()));
            Ok(())
        }
    }

    /// A pipeline whose every receiver has one recording integration sharing `calls`.
    pub fn recording_pipeline(
        receivers: &[&str],
        send_resolved: bool,
        calls: &Arc<Calls>,
    ) -> Pipeline {
        let map = receivers
            .iter()
            .map(|name| {
                let integration = Arc::new(Integration {
                    name: "recorder",
                    index: 0,
                    notifier: Notifier::Recorder(Recorder {
                        send_resolved,
                        calls: Arc::clone(calls),
                    }),
                });
                (name.to_string(), vec![integration])
            })
            .collect();
        Pipeline::from_receivers(map)
    }
}
