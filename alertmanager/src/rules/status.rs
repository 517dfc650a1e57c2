//! How rule evaluation is going, as `/api/v1/rules` reports it: each rule's health, last error
//! and evaluation time, and each group's last evaluation.

use super::eval::ActiveAlert;
use super::file::Rule;
use std::time::Duration;

/// Prometheus's `rules.RuleHealth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleHealth {
    /// Not evaluated yet.
    Unknown,
    Ok,
    Err,
}

impl RuleHealth {
    pub fn as_str(&self) -> &'static str {
        match self {
            RuleHealth::Unknown => "unknown",
            RuleHealth::Ok => "ok",
            RuleHealth::Err => "err",
        }
    }
}

/// One rule's definition, health and (for alerting rules) its pending and firing alerts.
#[derive(Clone, Debug)]
pub struct RuleStatus {
    pub rule: Rule,
    pub health: RuleHealth,
    pub last_error: Option<String>,
    /// When the rule's group was last evaluated, in milliseconds since the epoch.
    pub last_evaluation_ms: Option<i64>,
    pub evaluation_seconds: f64,
    pub alerts: Vec<ActiveAlert>,
}

/// One group's settings, last evaluation and rules.
#[derive(Clone, Debug)]
pub struct GroupStatus {
    pub name: String,
    pub file: String,
    pub interval: Duration,
    pub limit: usize,
    pub last_evaluation_ms: Option<i64>,
    pub evaluation_seconds: f64,
    pub rules: Vec<RuleStatus>,
}

#[derive(Clone, Debug)]
pub(crate) struct RuleHealthState {
    pub health: RuleHealth,
    pub last_error: Option<String>,
    pub evaluation_seconds: f64,
}

/// The mutable part of a group's status, updated after every evaluation.
#[derive(Clone, Debug)]
pub(crate) struct GroupHealth {
    pub last_evaluation_ms: Option<i64>,
    pub evaluation_seconds: f64,
    pub rules: Vec<RuleHealthState>,
}

impl GroupHealth {
    pub fn new(rules: usize) -> Self {
        GroupHealth {
            last_evaluation_ms: None,
            evaluation_seconds: 0.0,
            rules: vec![
                RuleHealthState {
                    health: RuleHealth::Unknown,
                    last_error: None,
                    evaluation_seconds: 0.0,
                };
                rules
            ],
        }
    }

    /// Records one evaluation: per rule, its outcome and duration in seconds.
    pub fn record(&mut self, ts_ms: i64, seconds: f64, outcomes: Vec<(Result<(), String>, f64)>) {
        self.last_evaluation_ms = Some(ts_ms);
        self.evaluation_seconds = seconds;
        for (state, (result, secs)) in self.rules.iter_mut().zip(outcomes) {
            state.evaluation_seconds = secs;
            match result {
                Ok(()) => {
                    state.health = RuleHealth::Ok;
                    state.last_error = None;
                }
                Err(e) => {
                    state.health = RuleHealth::Err;
                    state.last_error = Some(e);
                }
            }
        }
    }
}
