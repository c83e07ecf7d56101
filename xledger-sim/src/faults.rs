//! Fault injection: Xledger's rate-limit errors, timeouts, HTTP errors, broken bodies and latency,
//! chosen deterministically per request by a [`FaultPlan`], plus behavioural concurrency and
//! burst limits that reject requests the way the real limits do.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::generate::push_json_string;
use crate::rng::SimRng;

pub const BURST_RATE_LIMIT_CODE: &str = "BAD_REQUEST.BURST_RATE_LIMIT_REACHED";
pub const CONCURRENCY_LIMIT_CODE: &str = "BAD_REQUEST.CONCURRENCY_LIMIT_REACHED";
pub const INSUFFICIENT_CREDITS_CODE: &str = "BAD_REQUEST.INSUFFICIENT_CREDITS";
pub const QUERY_TIMEOUT_MESSAGE: &str = "Your query timed out.";

/// What goes wrong with a request.
///
/// The three rate-limit faults and [`Fault::QueryTimeout`] answer HTTP 200 with an `errors` entry
/// whose `code` sits at the top level of the entry, as Xledger does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// `BAD_REQUEST.BURST_RATE_LIMIT_REACHED`.
    BurstRateLimit,
    /// `BAD_REQUEST.CONCURRENCY_LIMIT_REACHED`.
    ConcurrencyLimit,
    /// `BAD_REQUEST.INSUFFICIENT_CREDITS` with `extensions.resetAt` = the simulator's clock +
    /// `reset_after` (RFC 3339, UTC).
    InsufficientCredits {
        #[serde(with = "millis", rename = "reset_after_ms")]
        reset_after: Duration,
    },
    /// `{"errors":[{"message":"Your query timed out."}]}`.
    QueryTimeout,
    /// An HTTP error status (500, 502, 503, …) with a short plain-text body.
    HttpStatus { status: u16 },
    /// HTTP 200 with a `Content-Length` matching a body cut in the middle of the JSON.
    TruncatedBody,
    /// HTTP 200, chunked; half of the body is sent, then the connection is aborted.
    AbortedBody,
    /// The request is answered normally after `delay` (combines with any other fault).
    Latency {
        #[serde(with = "millis", rename = "delay_ms")]
        delay: Duration,
    },
    /// An error confined to one root field: every root field of the request whose name or alias
    /// is `field` answers `data.<alias>: null` with an `errors` entry `{message, code, path:
    /// ["<alias>"]}`; the other root fields answer normally (HTTP 200). Its trigger counts only
    /// the requests that contain `field`, so "the next request" means the next one asking for it.
    FieldError {
        field: String,
        message: String,
        #[serde(default)]
        code: Option<String>,
    },
}

/// Which requests (or, for webhook delivery faults, which deliveries) a rule hits. Requests are
/// counted from when the plan was set, starting at 1; only requests that got past the behavioural
/// limits count, and a [`Fault::FieldError`] rule counts only requests containing its field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    /// The next `count` requests.
    Next { count: u64 },
    /// Every `n`-th request (the n-th, 2n-th, …).
    EveryNth { n: u64 },
    /// Each request with `probability`, drawn from a generator seeded with `seed`.
    Probability { probability: f64, seed: u64 },
}

/// One rule: a fault and when it happens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    pub fault: Fault,
    pub when: Trigger,
}

/// "More than `max_requests` within `window` → `BURST_RATE_LIMIT_REACHED`" (a sliding window of
/// accepted requests; rejected ones do not count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BurstLimit {
    pub max_requests: usize,
    #[serde(with = "millis", rename = "window_ms")]
    pub window: Duration,
}

/// Everything that goes wrong, set through [`crate::SimHandle::set_faults`] or `PUT /admin/faults`.
///
/// Rules are looked at in order: every latency that fires adds up; the first other fault that
/// fires decides the answer. The limits are checked before the rules.
///
/// ```
/// use std::time::Duration;
/// use xledger_sim::{Fault, FaultPlan};
/// let plan = FaultPlan::default()
///     .next(2, Fault::HttpStatus { status: 503 })
///     .every_nth(10, Fault::BurstRateLimit)
///     .with_probability(0.05, 42, Fault::TruncatedBody)
///     .concurrency_limit(4)
///     .burst_limit(20, Duration::from_secs(5));
/// assert_eq!(plan.rules.len(), 3);
/// // The admin API takes the same plan as JSON.
/// let json = serde_json::to_string(&plan).unwrap();
/// assert_eq!(serde_json::from_str::<FaultPlan>(&json).unwrap(), plan);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultPlan {
    #[serde(default)]
    pub rules: Vec<FaultRule>,
    /// More than this many requests in flight → `CONCURRENCY_LIMIT_REACHED`.
    #[serde(default)]
    pub concurrency_limit: Option<usize>,
    #[serde(default)]
    pub burst_limit: Option<BurstLimit>,
}

impl FaultPlan {
    /// Adds a rule: the next `count` requests get `fault`.
    #[must_use]
    pub fn next(mut self, count: u64, fault: Fault) -> Self {
        self.rules.push(FaultRule { fault, when: Trigger::Next { count } });
        self
    }

    /// Adds a rule: every `n`-th request gets `fault`.
    #[must_use]
    pub fn every_nth(mut self, n: u64, fault: Fault) -> Self {
        self.rules.push(FaultRule { fault, when: Trigger::EveryNth { n } });
        self
    }

    /// Adds a rule: each request gets `fault` with `probability` (seeded, so repeatable).
    #[must_use]
    pub fn with_probability(mut self, probability: f64, seed: u64, fault: Fault) -> Self {
        self.rules.push(FaultRule { fault, when: Trigger::Probability { probability, seed } });
        self
    }

    /// Adds a rule: the next `count` requests asking for root field `field` (a name or an alias)
    /// get an error confined to that field.
    #[must_use]
    pub fn field_error(mut self, count: u64, field: &str, message: &str) -> Self {
        let fault = Fault::FieldError { field: field.to_owned(), message: message.to_owned(), code: None };
        self.rules.push(FaultRule { fault, when: Trigger::Next { count } });
        self
    }

    #[must_use]
    pub fn concurrency_limit(mut self, max_in_flight: usize) -> Self {
        self.concurrency_limit = Some(max_in_flight);
        self
    }

    #[must_use]
    pub fn burst_limit(mut self, max_requests: usize, window: Duration) -> Self {
        self.burst_limit = Some(BurstLimit { max_requests, window });
        self
    }
}

/// What happens to one request.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Decision {
    pub(crate) delay: Duration,
    pub(crate) fault: Option<Fault>,
}

/// A plan and its progress (how many requests seen, what each rule has left).
#[derive(Debug)]
pub(crate) struct FaultState {
    plan: FaultPlan,
    requests_seen: u64,
    remaining: Vec<u64>,
    rngs: Vec<SimRng>,
    /// Per rule: requests containing a field-error rule's field so far.
    field_requests_seen: Vec<u64>,
    accepted: VecDeque<Instant>,
}

/// A root-field error a fault forces on one request: which root field (name or alias) and what
/// the `errors` entry says.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ForcedFieldError {
    pub(crate) field: String,
    pub(crate) message: String,
    pub(crate) code: Option<String>,
}

impl FaultState {
    pub(crate) fn new(plan: FaultPlan) -> FaultState {
        let remaining =
            plan.rules.iter().map(|r| if let Trigger::Next { count } = r.when { count } else { 0 }).collect();
        let rngs = plan
            .rules
            .iter()
            .map(|r| SimRng::new(if let Trigger::Probability { seed, .. } = r.when { seed } else { 0 }))
            .collect();
        let field_requests_seen = vec![0; plan.rules.len()];
        FaultState { plan, requests_seen: 0, remaining, rngs, field_requests_seen, accepted: VecDeque::new() }
    }

    /// The field errors of a request whose root fields are `(alias, field name)` pairs, decided
    /// after the request was planned; field-error rules fire independently of each other.
    pub(crate) fn field_errors(&mut self, root_fields: &[(&str, &str)]) -> Vec<ForcedFieldError> {
        let mut forced = Vec::new();
        for (index, rule) in self.plan.rules.iter().enumerate() {
            let Fault::FieldError { field, message, code } = &rule.fault else { continue };
            if !root_fields.iter().any(|(alias, name)| alias == field || name == field) {
                continue;
            }
            let Some(seen) = self.field_requests_seen.get_mut(index) else { continue };
            *seen += 1;
            let fires = fires(&rule.when, *seen, self.remaining.get(index).copied(), self.rngs.get_mut(index));
            if fires {
                if let Some(left) = self.remaining.get_mut(index) {
                    *left = left.saturating_sub(1);
                }
                forced.push(ForcedFieldError { field: field.clone(), message: message.clone(), code: code.clone() });
            }
        }
        forced
    }

    /// Decides the fate of a request arriving at `now` with `in_flight` requests (itself included).
    pub(crate) fn decide(&mut self, in_flight: usize, now: Instant) -> Decision {
        if self.plan.concurrency_limit.is_some_and(|limit| in_flight > limit) {
            return Decision { delay: Duration::ZERO, fault: Some(Fault::ConcurrencyLimit) };
        }
        if let Some(limit) = self.plan.burst_limit {
            while self.accepted.front().is_some_and(|&t| now.duration_since(t) >= limit.window) {
                self.accepted.pop_front();
            }
            if self.accepted.len() >= limit.max_requests {
                return Decision { delay: Duration::ZERO, fault: Some(Fault::BurstRateLimit) };
            }
            self.accepted.push_back(now);
        }
        self.requests_seen += 1;
        let mut decision = Decision::default();
        for (index, rule) in self.plan.rules.iter().enumerate() {
            if matches!(rule.fault, Fault::FieldError { .. }) {
                // Decided per root field once the request is planned (`field_errors`).
                continue;
            }
            let remaining = self.remaining.get(index).copied();
            if !fires(&rule.when, self.requests_seen, remaining, self.rngs.get_mut(index)) {
                continue;
            }
            let applies = match &rule.fault {
                Fault::Latency { delay } => {
                    decision.delay += *delay;
                    true
                }
                _ if decision.fault.is_none() => {
                    decision.fault = Some(rule.fault.clone());
                    true
                }
                // Another fault already answers this request: a "next n" rule waits its turn.
                _ => false,
            };
            if applies && let Some(left) = self.remaining.get_mut(index) {
                *left = left.saturating_sub(1);
            }
        }
        decision
    }
}

/// Whether a rule with trigger `when` hits the `seen`-th event (1-based), given what a "next"
/// rule has left and a probability rule's generator.
pub(crate) fn fires(when: &Trigger, seen: u64, remaining: Option<u64>, rng: Option<&mut SimRng>) -> bool {
    match *when {
        Trigger::Next { .. } => remaining.is_some_and(|left| left > 0),
        Trigger::EveryNth { n } => n > 0 && seen.is_multiple_of(n),
        Trigger::Probability { probability, .. } => rng.is_some_and(|rng| rng.chance(probability)),
    }
}

/// The `errors` body of an error-entry fault, or `None` for the faults that are not one.
pub(crate) fn error_entry_body(fault: &Fault, clock: DateTime<Utc>) -> Option<String> {
    let (message, code) = match fault {
        Fault::BurstRateLimit => {
            ("Burst rate limit reached. Slow down and retry in a few seconds.", Some(BURST_RATE_LIMIT_CODE))
        }
        Fault::ConcurrencyLimit => {
            ("Too many concurrent requests. Retry when a running request has finished.", Some(CONCURRENCY_LIMIT_CODE))
        }
        Fault::InsufficientCredits { .. } => {
            ("Insufficient credits to run the query.", Some(INSUFFICIENT_CREDITS_CODE))
        }
        Fault::QueryTimeout => (QUERY_TIMEOUT_MESSAGE, None),
        _ => return None,
    };
    let mut out = String::from("{\"errors\":[{\"message\":");
    push_json_string(message, &mut out);
    if let Some(code) = code {
        out.push_str(",\"code\":");
        push_json_string(code, &mut out);
    }
    if let Fault::InsufficientCredits { reset_after } = fault {
        let reset_at = clock + chrono::Duration::from_std(*reset_after).unwrap_or(chrono::Duration::MAX);
        out.push_str(",\"extensions\":{\"resetAt\":");
        push_json_string(&reset_at.to_rfc3339_opts(SecondsFormat::Secs, true), &mut out);
        out.push('}');
    }
    out.push_str("}]}");
    Some(out)
}

/// Durations as whole milliseconds in JSON (`"delay_ms": 250`).
pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults_of(plan: FaultPlan, requests: usize) -> Vec<Option<Fault>> {
        let mut state = FaultState::new(plan);
        let now = Instant::now();
        (0..requests).map(|_| state.decide(1, now).fault).collect()
    }

    #[test]
    fn next_rule_hits_exactly_the_next_n_requests() {
        let faults = faults_of(FaultPlan::default().next(2, Fault::QueryTimeout), 4);
        assert_eq!(faults, vec![Some(Fault::QueryTimeout), Some(Fault::QueryTimeout), None, None]);
    }

    #[test]
    fn every_nth_rule_hits_multiples_of_n() {
        let faults = faults_of(FaultPlan::default().every_nth(3, Fault::BurstRateLimit), 7);
        let hit: Vec<usize> = faults.iter().enumerate().filter(|(_, f)| f.is_some()).map(|(i, _)| i + 1).collect();
        assert_eq!(hit, vec![3, 6]);
    }

    #[test]
    fn probability_rule_is_repeatable_for_a_seed() {
        let plan = FaultPlan::default().with_probability(0.3, 9, Fault::HttpStatus { status: 502 });
        let first = faults_of(plan.clone(), 200);
        assert_eq!(first, faults_of(plan, 200));
        let hits = first.iter().filter(|f| f.is_some()).count();
        assert!((30..=90).contains(&hits), "{hits} of 200 at p = 0.3");
    }

    #[test]
    fn a_waiting_next_rule_is_not_used_up_by_an_earlier_fault() {
        let plan = FaultPlan::default().next(1, Fault::QueryTimeout).next(1, Fault::TruncatedBody);
        assert_eq!(faults_of(plan, 3), vec![Some(Fault::QueryTimeout), Some(Fault::TruncatedBody), None]);
    }

    #[test]
    fn latency_adds_up_and_combines_with_a_fault() {
        let plan = FaultPlan::default()
            .next(1, Fault::Latency { delay: Duration::from_millis(100) })
            .next(1, Fault::Latency { delay: Duration::from_millis(50) })
            .next(1, Fault::AbortedBody);
        let mut state = FaultState::new(plan);
        let decision = state.decide(1, Instant::now());
        assert_eq!(decision, Decision { delay: Duration::from_millis(150), fault: Some(Fault::AbortedBody) });
    }

    #[test]
    fn field_error_rules_count_only_requests_with_their_field() {
        let mut state = FaultState::new(FaultPlan::default().field_error(1, "projects", "boom"));
        assert_eq!(state.decide(1, Instant::now()).fault, None, "a field error is not a request fault");
        assert!(state.field_errors(&[("probe", "project_deltas")]).is_empty());
        let forced = state.field_errors(&[("a", "customers"), ("b", "projects")]);
        assert_eq!(forced.len(), 1);
        assert_eq!(forced[0].field, "projects");
        assert!(state.field_errors(&[("b", "projects")]).is_empty(), "used up");
    }

    #[test]
    fn credits_error_carries_reset_at_in_utc() {
        let clock = DateTime::parse_from_rfc3339("2024-03-31T00:30:00Z").unwrap().with_timezone(&Utc);
        let body =
            error_entry_body(&Fault::InsufficientCredits { reset_after: Duration::from_secs(1200) }, clock).unwrap();
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["errors"][0]["code"], INSUFFICIENT_CREDITS_CODE);
        assert_eq!(json["errors"][0]["extensions"]["resetAt"], "2024-03-31T00:50:00Z");
    }
}
