//! Vigil's alerting: Prometheus rule evaluation and an in-process Alertmanager.
//!
//! Two halves, joined by [`AlertSink`]:
//!
//! - **Rules** ([`RuleManager`]): Prometheus rule files read unchanged ([`load_rule_files`]),
//!   each group evaluated on its interval through a [`QueryFn`] (the query engine, never
//!   imported). Recording rules write through `model::Appender`; alerting rules run
//!   Prometheus's state machine (pending → firing → resolved, `for`, `keep_firing_for`, resend
//!   delay, 15-minute resolved retention) and send [`PostableAlert`]s to the sink.
//! - **Alertmanager** ([`Alertmanager`]): an Alertmanager 0.25 config read unchanged
//!   ([`AlertmanagerConfig`]); alerts are stored and merged, routed down the tree (`continue`,
//!   `matchers`, `match`, `match_re`), grouped by `group_by`, flushed on `group_wait` /
//!   `group_interval` / `repeat_interval` timers, deduplicated against a notification log, and
//!   sent to webhooks and Slack with Alertmanager 0.25's payloads, byte for byte.
//!
//! ```no_run
//! use alertmanager::{
//!     load_rule_files, Alertmanager, AlertmanagerConfig, AlertmanagerOptions, QueryFn,
//!     RuleManager, RuleManagerOptions,
//! };
//! use std::sync::Arc;
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn demo(query: QueryFn, store: Arc<model::MemStorage>) -> Result<(), alertmanager::Error> {
//! let config = AlertmanagerConfig::load("alertmanager.yml".as_ref())?;
//! let am = Arc::new(Alertmanager::new(config, AlertmanagerOptions::default()));
//! let groups = load_rule_files(&["rules.yml".into()])?;
//! let rules = Arc::new(RuleManager::new(groups, query, store, am.clone(), RuleManagerOptions::default()));
//! let shutdown = CancellationToken::new();
//! tokio::join!(am.run(shutdown.clone()), rules.run(shutdown));
//! # Ok(()) }
//! ```
//!
//! Templates in rule labels and annotations and in notification configs run on the crate's own
//! Go `text/template` engine (the private `template` module: `if`/`range`/`with`, variables,
//! pipelines, `define`/`template`/`block`, Go's `fmt` and comparison rules) with Prometheus's
//! function map (`query`, `humanize*`, `graphLink`, …) or Alertmanager's (`join`,
//! `.CommonLabels.SortedPairs`, the default `slack.default.*` templates). For the HTTP API,
//! [`RuleManager::group_statuses`] reports rule health and [`Alertmanager::alerts`] lists
//! alerts with their receivers ([`AlertView`]); [`redacted_config_yaml`] is the config with
//! secrets hidden.
//!
//! Silences ([`Silence`], set through [`Alertmanager::set_silence`]) follow Alertmanager's
//! validation and update rules, mute matching alerts in every flush and in the alert view, and
//! persist as JSON in [`AlertmanagerOptions::data_dir`]. Inhibition rules mute targets while a
//! matching source fires, in every flush and in the alert view (`inhibitedBy`).
//!
//! Rule unit tests in promtool's format ([`run_rule_test_file`]) evaluate rule files over a
//! `model::MemStorage` with the same [`RuleManager`], the query engine handed in through a
//! [`RuleTestEngine`]; `vigil test rules` is this function plus promtool's output.
//!
//! Time intervals (`time_intervals`, the deprecated `mute_time_intervals`) are compiled with
//! Alertmanager 0.25's validation, time zones read from the system's zoneinfo files; a route's
//! `mute_time_intervals` and `active_time_intervals` silence its flushes as 0.25's time stages
//! do (the flush succeeds, resolved alerts leave unannounced, the notification log is kept).
//!
//! Rule groups may mix PromQL and LogQL rules: [`classify_expr`] decides an expression's
//! [`QueryLanguage`], and [`RuleManager::with_log_query`] gives LogQL rules their engine.
//!
//! Receivers: webhooks (payload version 4) and Slack incoming webhooks (Alertmanager 0.25's
//! body, rendered with its default templates and the config's `templates:` files). Times in
//! payloads, fingerprints, group keys and JSON escaping follow Go's conventions (the private
//! `goformat` module) so receivers written for Alertmanager see the same bytes.

mod alert;
mod alertmanager;
mod clock;
mod config;
mod dispatch;
mod duration;
mod error;
mod goformat;
mod inhibit;
mod notify;
mod rules;
mod silence;
mod store;
mod template;
mod timeinterval;
mod unittest;
mod view;

pub use crate::alertmanager::{Alertmanager, AlertmanagerOptions, GC_INTERVAL};
pub use alert::{fingerprint, fingerprint_hex, PostableAlert};
pub use config::{
    parse_matcher, parse_matchers, AlertmanagerConfig, Authorization, BasicAuth, GlobalConfig,
    HttpConfig, InhibitRuleConfig, ReceiverConfig, RouteConfig, SlackAction, SlackConfig,
    SlackConfirm, SlackField, TimeIntervalConfig, TimeIntervalSpec, TimeRange, WebhookConfig,
    DEFAULT_GROUP_INTERVAL, DEFAULT_GROUP_WAIT, DEFAULT_REPEAT_INTERVAL, DEFAULT_RESOLVE_TIMEOUT,
    DEFAULT_SLACK_SEND_RESOLVED, DEFAULT_WEBHOOK_SEND_RESOLVED,
};
pub use duration::{format_duration, parse_duration, PromDuration};
pub use error::{Error, InvalidRule};
pub use rules::{
    classify_expr, load_rule_files, parse_rule_file, ActiveAlert, AlertSink, AlertState,
    AlertingRule, ForRestoreOptions, GroupStatus, Position, QueryFn, QueryLanguage, RecordingRule,
    Rule, RuleGroup, RuleHealth, RuleManager, RuleManagerOptions, RuleStatus,
    ALERTS_FOR_STATE_METRIC, ALERTS_METRIC, DEFAULT_EVALUATION_INTERVAL, DEFAULT_FOR_GRACE_PERIOD,
    DEFAULT_FOR_OUTAGE_TOLERANCE, DEFAULT_RESEND_DELAY, RESOLVED_RETENTION_MS,
};
pub use silence::{
    PostableSilence, Silence, SilenceError, SilenceMatcher, SilenceState, SILENCE_RETENTION,
};
pub use unittest::{run_rule_test_file, RuleTestEngine, DEFAULT_TEST_EVALUATION_INTERVAL};
pub use view::{redacted_config_yaml, AlertGroupView, AlertView, AlertViewState};
