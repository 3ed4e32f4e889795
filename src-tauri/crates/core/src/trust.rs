//! Trust evaluation: an agent's TRUSTED / PENDING / UNTRUSTED state, explained.
//!
//! The state is computed, not stored: it depends on the agent's facts and on the time. Each
//! signal says what was checked, whether it passed, its contribution and, when it did not pass,
//! what to do. The rule is deliberately simple so a founder can predict it:
//! any failing signal makes the agent UNTRUSTED; otherwise any warning keeps it PENDING;
//! otherwise it is TRUSTED. A manual override (with a reason, audited) replaces the computed
//! state but the signals are still shown. New agents start PENDING (the track-record signal).

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::model::{AgentKey, AgentStatus, Scope, TrustState};

/// Keys older than this count as stale: rotate them.
pub const KEY_MAX_AGE_DAYS: i64 = 90;
/// How long a new agent stays PENDING before its track record counts.
pub const TRACK_RECORD_HOURS: i64 = 24;
/// More scopes than this is no longer "narrow".
pub const NARROW_SCOPE_LIMIT: usize = 8;

/// How one signal came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum SignalOutcome {
    Pass,
    Warn,
    Fail,
}

/// One explained input to the trust state.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct TrustSignal {
    /// Stable id (`owner`, `key`, `key_age`, `scopes`, `status`, `track_record`).
    pub id: String,
    pub label: String,
    pub outcome: SignalOutcome,
    /// Points this signal adds (+) or removes (-); the sum is shown as the score.
    pub contribution: i32,
    /// What was found, and what to do when it did not pass.
    pub detail: String,
}

/// A manual trust decision by a person.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct TrustOverride {
    pub state: TrustState,
    pub reason: String,
}

/// The evaluated trust of an agent.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct TrustReport {
    /// The effective state (the override's when there is one).
    pub state: TrustState,
    /// What the signals alone give.
    pub computed: TrustState,
    pub score: i32,
    pub signals: Vec<TrustSignal>,
    #[serde(rename = "override")]
    pub override_: Option<TrustOverride>,
}

/// The facts trust is computed from.
#[derive(Debug)]
pub struct TrustInputs<'a> {
    pub status: AgentStatus,
    pub has_owner: bool,
    pub keys: &'a [AgentKey],
    pub scopes: &'a [Scope],
    pub created_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub override_: Option<TrustOverride>,
}

fn signal(
    id: &str,
    label: &str,
    outcome: SignalOutcome,
    weight: i32,
    detail: String,
) -> TrustSignal {
    let contribution = match outcome {
        SignalOutcome::Pass => weight,
        SignalOutcome::Warn => 0,
        SignalOutcome::Fail => -weight,
    };
    TrustSignal {
        id: id.into(),
        label: label.into(),
        outcome,
        contribution,
        detail,
    }
}

/// The facts [`state`] needs: those of [`TrustInputs`] without the keys' other fields.
#[derive(Debug)]
pub struct StateInputs<'a> {
    pub status: AgentStatus,
    pub has_owner: bool,
    /// Each key's creation time and expiry.
    pub key_times: &'a [(DateTime<Utc>, Option<DateTime<Utc>>)],
    pub scope_count: usize,
    pub created_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub override_state: Option<TrustState>,
}

/// The effective trust state alone, with the same rules as [`evaluate`] but without writing
/// the signals' explanations: what the token endpoint checks on every request. A test
/// compares the two over every combination of the signals.
pub fn state(i: &StateInputs<'_>) -> TrustState {
    let fail = i.status != AgentStatus::Active || !i.has_owner;
    let newest = i
        .key_times
        .iter()
        .filter(|(_, exp)| exp.is_none_or(|t| i.now < t))
        .map(|(created, _)| *created)
        .max();
    let mut warn = match newest {
        None => true,
        Some(n) => i.now - n > Duration::days(KEY_MAX_AGE_DAYS),
    };
    warn |= i.scope_count == 0 || i.scope_count > NARROW_SCOPE_LIMIT;
    warn |= i.now - i.created_at < Duration::hours(TRACK_RECORD_HOURS);
    let computed = if fail {
        TrustState::Untrusted
    } else if warn {
        TrustState::Pending
    } else {
        TrustState::Trusted
    };
    match (i.override_state, i.status) {
        (_, AgentStatus::Suspended | AgentStatus::Revoked) => TrustState::Untrusted,
        (Some(o), _) => o,
        (None, _) => computed,
    }
}

/// Evaluate an agent's trust.
pub fn evaluate(i: TrustInputs<'_>) -> TrustReport {
    use SignalOutcome::*;
    let mut signals = Vec::with_capacity(6);

    signals.push(match i.status {
        AgentStatus::Active => signal("status", "Agent is active", Pass, 1, "active".into()),
        AgentStatus::Suspended => signal(
            "status",
            "Agent is active",
            Fail,
            3,
            "suspended: it gets no tokens until someone resumes it".into(),
        ),
        AgentStatus::Revoked => signal(
            "status",
            "Agent is active",
            Fail,
            3,
            "revoked: this is final".into(),
        ),
    });

    signals.push(if i.has_owner {
        signal(
            "owner",
            "Accountable owner assigned",
            Pass,
            1,
            "a team member answers for it".into(),
        )
    } else {
        signal(
            "owner",
            "Accountable owner assigned",
            Fail,
            2,
            "no owner: assign a team member with `mandate agent edit NAME --owner MEMBER`".into(),
        )
    });

    let active: Vec<&AgentKey> = i.keys.iter().filter(|k| k.is_active(i.now)).collect();
    signals.push(if active.is_empty() {
        signal(
            "key",
            "Own key registered",
            Warn,
            1,
            "no active key: generate one (`mandate agent rotate-key NAME`) or register the \
             agent's public key"
                .into(),
        )
    } else {
        signal(
            "key",
            "Own key registered",
            Pass,
            1,
            format!("{} active Ed25519 key(s)", active.len()),
        )
    });

    if let Some(newest) = active.iter().map(|k| k.created_at).max() {
        let age = i.now - newest;
        signals.push(if age > Duration::days(KEY_MAX_AGE_DAYS) {
            signal(
                "key_age",
                "Key is fresh",
                Warn,
                1,
                format!(
                    "newest key is {} days old (over {KEY_MAX_AGE_DAYS}): rotate it",
                    age.num_days()
                ),
            )
        } else {
            signal(
                "key_age",
                "Key is fresh",
                Pass,
                1,
                format!("newest key is {} days old", age.num_days()),
            )
        });
    }

    signals.push(if i.scopes.is_empty() {
        signal(
            "scopes",
            "Scopes are narrow",
            Warn,
            1,
            "no scopes granted yet: it can do nothing until you grant the actions it needs".into(),
        )
    } else if i.scopes.len() > NARROW_SCOPE_LIMIT {
        signal(
            "scopes",
            "Scopes are narrow",
            Warn,
            1,
            format!(
                "{} scopes granted (more than {NARROW_SCOPE_LIMIT}): check it needs them all",
                i.scopes.len()
            ),
        )
    } else {
        signal(
            "scopes",
            "Scopes are narrow",
            Pass,
            1,
            format!("{} explicit scope(s), no wildcards", i.scopes.len()),
        )
    });

    let age = i.now - i.created_at;
    signals.push(if age < Duration::hours(TRACK_RECORD_HOURS) {
        signal(
            "track_record",
            "Track record",
            Warn,
            1,
            format!(
                "registered {} h ago: new agents stay PENDING for their first {TRACK_RECORD_HOURS} \
                 hours, unless someone marks them trusted",
                age.num_hours().max(0)
            ),
        )
    } else {
        signal(
            "track_record",
            "Track record",
            Pass,
            1,
            format!("registered {} days ago", age.num_days()),
        )
    });

    let score = signals.iter().map(|s| s.contribution).sum();
    let computed = if signals.iter().any(|s| s.outcome == Fail) {
        TrustState::Untrusted
    } else if signals.iter().any(|s| s.outcome == Warn) {
        TrustState::Pending
    } else {
        TrustState::Trusted
    };
    // A suspended or revoked agent is never trusted, whatever the override says.
    let state = match (&i.override_, i.status) {
        (_, AgentStatus::Suspended | AgentStatus::Revoked) => TrustState::Untrusted,
        (Some(o), _) => o.state,
        (None, _) => computed,
    };
    TrustReport {
        state,
        computed,
        score,
        signals,
        override_: i.override_,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::KeyOrigin;

    fn key(created: DateTime<Utc>) -> AgentKey {
        AgentKey {
            kid: "k".into(),
            public_x: "x".into(),
            fingerprint: "f".into(),
            origin: KeyOrigin::Keychain,
            created_at: created,
            expires_at: None,
        }
    }

    fn eval(
        status: AgentStatus,
        keys: &[AgentKey],
        scopes: &[Scope],
        age_h: i64,
        o: Option<TrustOverride>,
    ) -> TrustReport {
        let now = Utc::now();
        evaluate(TrustInputs {
            status,
            has_owner: true,
            keys,
            scopes,
            created_at: now - Duration::hours(age_h),
            now,
            override_: o,
        })
    }

    #[test]
    fn new_agents_are_pending_then_trusted_with_good_signals() {
        let now = Utc::now();
        let keys = [key(now)];
        let scopes = [Scope::parse("github:repo.read").unwrap()];
        let fresh = eval(AgentStatus::Active, &keys, &scopes, 1, None);
        assert_eq!(fresh.state, TrustState::Pending);
        let s = fresh
            .signals
            .iter()
            .find(|s| s.id == "track_record")
            .unwrap();
        assert_eq!(s.outcome, SignalOutcome::Warn);
        let old = eval(AgentStatus::Active, &keys, &scopes, 48, None);
        assert_eq!(old.state, TrustState::Trusted);
        assert_eq!(old.score, old.signals.len() as i32);
    }

    /// `state` (the endpoint's) and `evaluate` (what people see) agree on every combination
    /// of status, owner, keys (none, fresh, stale, expired, mixed), scope counts, agent age and
    /// override.
    #[test]
    fn state_agrees_with_evaluate_everywhere() {
        let now = Utc::now();
        let fresh = key(now - Duration::days(3));
        let stale = key(now - Duration::days(KEY_MAX_AGE_DAYS + 1));
        let mut expired = key(now - Duration::days(2));
        expired.expires_at = Some(now - Duration::hours(1));
        let mut expiring = key(now - Duration::days(1));
        expiring.expires_at = Some(now + Duration::hours(1));
        let key_sets: Vec<Vec<AgentKey>> = vec![
            vec![],
            vec![fresh.clone()],
            vec![stale.clone()],
            vec![expired.clone()],
            vec![expiring],
            vec![stale.clone(), fresh],
            vec![expired, stale],
        ];
        let scope_sets: Vec<Vec<Scope>> = [0usize, 1, NARROW_SCOPE_LIMIT, NARROW_SCOPE_LIMIT + 1]
            .iter()
            .map(|n| {
                (0..*n)
                    .map(|i| Scope::parse(&format!("github:repo.read{i}")).unwrap())
                    .collect()
            })
            .collect();
        let overrides = [
            None,
            Some(TrustState::Trusted),
            Some(TrustState::Pending),
            Some(TrustState::Untrusted),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for status in [
            AgentStatus::Active,
            AgentStatus::Suspended,
            AgentStatus::Revoked,
        ] {
            for has_owner in [true, false] {
                for keys in &key_sets {
                    for scopes in &scope_sets {
                        for age_h in [1, TRACK_RECORD_HOURS + 1] {
                            for o in overrides {
                                let created_at = now - Duration::hours(age_h);
                                let full = evaluate(TrustInputs {
                                    status,
                                    has_owner,
                                    keys,
                                    scopes,
                                    created_at,
                                    now,
                                    override_: o.map(|state| TrustOverride {
                                        state,
                                        reason: "r".into(),
                                    }),
                                });
                                let times: Vec<_> =
                                    keys.iter().map(|k| (k.created_at, k.expires_at)).collect();
                                let narrow = state(&StateInputs {
                                    status,
                                    has_owner,
                                    key_times: &times,
                                    scope_count: scopes.len(),
                                    created_at,
                                    now,
                                    override_state: o,
                                });
                                assert_eq!(
                                    narrow,
                                    full.state,
                                    "{status:?} owner={has_owner} keys={keys:?} scopes={} \
                                     age={age_h}h override={o:?}",
                                    scopes.len()
                                );
                                seen.insert(full.state);
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(seen.len(), 3, "every state must be reached");
    }

    #[test]
    fn suspended_is_untrusted_even_with_an_override() {
        let o = TrustOverride {
            state: TrustState::Trusted,
            reason: "known good".into(),
        };
        let r = eval(AgentStatus::Suspended, &[], &[], 100, Some(o));
        assert_eq!(r.state, TrustState::Untrusted);
    }

    #[test]
    fn override_replaces_computed_state_but_keeps_signals() {
        let o = TrustOverride {
            state: TrustState::Trusted,
            reason: "reviewed".into(),
        };
        let r = eval(AgentStatus::Active, &[], &[], 1, Some(o));
        assert_eq!(
            (r.state, r.computed),
            (TrustState::Trusted, TrustState::Pending)
        );
        assert!(!r.signals.is_empty());
    }

    #[test]
    fn stale_keys_and_broad_scopes_warn() {
        let now = Utc::now();
        let keys = [key(now - Duration::days(KEY_MAX_AGE_DAYS + 1))];
        let scopes: Vec<Scope> = (0..=NARROW_SCOPE_LIMIT)
            .map(|n| Scope::parse(&format!("github:a{n}")).unwrap())
            .collect();
        let r = eval(AgentStatus::Active, &keys, &scopes, 100, None);
        assert_eq!(r.state, TrustState::Pending);
        for id in ["key_age", "scopes"] {
            let s = r.signals.iter().find(|s| s.id == id).unwrap();
            assert_eq!(s.outcome, SignalOutcome::Warn, "{id}");
        }
    }
}
