//! Trust evaluation: an agent's score from 0 to 100 and its TRUSTED / PENDING / UNTRUSTED
//! state, explained.
//!
//! The score is the sum of bounded contributions, held within 0-100, and every signal shows
//! its points:
//! - the registry checklist (status, owner, key, key age, narrow scopes, track record): up to
//!   [`CHECKLIST_MAX`] points, computed here from the agent's facts;
//! - behaviour (denials, volume, new actions, unusual hours), compared with the agent's own
//!   audit history by [`behaviour`], off the request path; between -70 and +15 (a burst of
//!   denials alone is -70, enough to drop any agent below the default PENDING threshold);
//! - attestations signed by registered attestors ([`attest`]), each within its attestor's
//!   bound.
//!
//! The thresholds ([`Thresholds`], changeable and audited) turn the score into a state. Three
//! conditions are not points: a suspended or revoked agent is UNTRUSTED whatever else holds
//! (an override cannot lift it); an agent without an owner is UNTRUSTED; an agent whose
//! configuration changed since a member last reviewed it (drift) is at most PENDING until
//! someone runs `mandate agent review`. A manual override (a person, a reason, audited)
//! replaces the computed state; the signals are still shown.
//!
//! The defaults are chosen so that an agent with no behaviour history lands where the old
//! checklist put it: new agents start PENDING (their track record earns nothing yet), a stale
//! key or broad scopes keep an older agent PENDING.
//!
//! What it is not: it reads nothing. [`evaluate`] (for people) and [`state`] (for the token
//! endpoint, the broker and the MCP gateway, without writing explanations) take the facts as
//! arguments; a test checks that they agree everywhere.

pub mod attest;
pub mod behaviour;
pub(crate) mod records;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{AgentKey, AgentStatus, Scope, TrustState};

pub use records::{AttestationView, Attestor, TrustSettings};

/// Keys older than this count as stale: rotate them.
pub const KEY_MAX_AGE_DAYS: i64 = 90;
/// How long a new agent earns nothing for its track record.
pub const TRACK_RECORD_HOURS: i64 = 24;
/// More scopes than this is no longer "narrow".
pub const NARROW_SCOPE_LIMIT: usize = 8;

/// Points of the checklist signals, when they pass.
pub const POINTS_STATUS: i32 = 10;
pub const POINTS_OWNER: i32 = 10;
pub const POINTS_KEY: i32 = 10;
pub const POINTS_KEY_AGE: i32 = 5;
pub const POINTS_SCOPES: i32 = 10;
pub const POINTS_TRACK_RECORD: i32 = 25;
/// The most the checklist gives.
pub const CHECKLIST_MAX: i32 = POINTS_STATUS
    + POINTS_OWNER
    + POINTS_KEY
    + POINTS_KEY_AGE
    + POINTS_SCOPES
    + POINTS_TRACK_RECORD;

/// How one signal came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum SignalOutcome {
    Pass,
    Warn,
    Fail,
}

/// One explained input to the trust score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct TrustSignal {
    /// Stable id (`owner`, `key`, `key_age`, `scopes`, `status`, `track_record`, `review`,
    /// `denials`, `volume`, `new_actions`, `hours`, `attestation:NAME`).
    pub id: String,
    pub label: String,
    pub outcome: SignalOutcome,
    /// Points this signal adds (+) or removes (-); the sum, held within 0-100, is the score.
    pub contribution: i32,
    /// What was seen, and what would clear it when it did not pass.
    pub detail: String,
}

/// A manual trust decision by a person.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct TrustOverride {
    pub state: TrustState,
    pub reason: String,
}

/// The scores at which the state changes. Invariant: `0 < pending_min < trusted_min <= 100`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Thresholds {
    /// From this score on, TRUSTED.
    pub trusted_min: i32,
    /// From this score on (and below `trusted_min`), PENDING; below it, UNTRUSTED.
    pub pending_min: i32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            trusted_min: 70,
            pending_min: 20,
        }
    }
}

impl Thresholds {
    /// The state a score gives.
    pub fn state(&self, score: i32) -> TrustState {
        if score >= self.trusted_min {
            TrustState::Trusted
        } else if score >= self.pending_min {
            TrustState::Pending
        } else {
            TrustState::Untrusted
        }
    }

    /// The lowest score a state needs (what a state floor means as a score).
    pub fn min_score(&self, state: TrustState) -> i32 {
        match state {
            TrustState::Trusted => self.trusted_min,
            TrustState::Pending => self.pending_min,
            TrustState::Untrusted => 0,
        }
    }
}

/// A configuration not yet reviewed: the version now and the one a member last reviewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct Drift {
    pub config_version: u32,
    pub reviewed_version: u32,
}

/// The evaluated trust of an agent.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct TrustReport {
    /// The effective state (the override's when there is one).
    pub state: TrustState,
    /// What the score and the conditions alone give.
    pub computed: TrustState,
    /// 0-100: the sum of the signals' contributions, held within that range.
    pub score: i32,
    pub signals: Vec<TrustSignal>,
    #[serde(rename = "override")]
    pub override_: Option<TrustOverride>,
    /// The thresholds the state was read with.
    pub thresholds: Thresholds,
    /// Set while the configuration changed since a member last reviewed it.
    pub drift: Option<Drift>,
    /// When the behaviour signals last changed (None: not computed yet).
    pub behaviour_at: Option<DateTime<Utc>>,
    /// The organisation's minimum score, which every request must reach (0: none).
    pub organisation_floor: i32,
}

/// An attestation that counts now, as the score sees it.
#[derive(Debug, Clone)]
pub struct CountedAttestation {
    pub attestor: String,
    /// Within the attestor's bound.
    pub points: i32,
    pub result: attest::ReviewResult,
    pub expires_at: DateTime<Utc>,
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
    /// The behaviour signals the refresher last computed (empty before its first run).
    pub behaviour: Vec<TrustSignal>,
    pub behaviour_at: Option<DateTime<Utc>>,
    /// Attestations for the agent's current configuration version from attestors not
    /// revoked (expired ones are left out here, at `now`).
    pub attestations: Vec<CountedAttestation>,
    pub drift: Option<Drift>,
    pub thresholds: Thresholds,
}

fn signal(
    id: &str,
    label: &str,
    outcome: SignalOutcome,
    contribution: i32,
    detail: String,
) -> TrustSignal {
    TrustSignal {
        id: id.into(),
        label: label.into(),
        outcome,
        contribution,
        detail,
    }
}

/// The facts [`state`] needs: those of [`TrustInputs`] without anything to explain.
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
    /// The sum of the behaviour signals' points.
    pub behaviour_points: i32,
    /// `(points, expires_at)` of each attestation for the current configuration version from
    /// an attestor not revoked.
    pub attestations: &'a [(i32, DateTime<Utc>)],
    pub drifted: bool,
    pub thresholds: Thresholds,
}

/// The checklist's points: the part of the score the registry's facts give.
fn checklist_points(i: &StateInputs<'_>) -> i32 {
    let mut p = 0;
    if i.status == AgentStatus::Active {
        p += POINTS_STATUS;
    }
    if i.has_owner {
        p += POINTS_OWNER;
    }
    let newest = i
        .key_times
        .iter()
        .filter(|(_, exp)| exp.is_none_or(|t| i.now < t))
        .map(|(created, _)| *created)
        .max();
    if let Some(n) = newest {
        p += POINTS_KEY;
        if i.now - n <= Duration::days(KEY_MAX_AGE_DAYS) {
            p += POINTS_KEY_AGE;
        }
    }
    if i.scope_count > 0 && i.scope_count <= NARROW_SCOPE_LIMIT {
        p += POINTS_SCOPES;
    }
    if i.now - i.created_at >= Duration::hours(TRACK_RECORD_HOURS) {
        p += POINTS_TRACK_RECORD;
    }
    p
}

/// The score alone, as [`state`] computes it: what a minimum score is compared with.
pub fn score(i: &StateInputs<'_>) -> i32 {
    let attested: i32 = i
        .attestations
        .iter()
        .filter(|(_, exp)| i.now < *exp)
        .map(|(p, _)| *p)
        .sum();
    (checklist_points(i) + i.behaviour_points + attested).clamp(0, 100)
}

/// The state the score and the conditions give, before any override.
fn computed_state(
    thresholds: &Thresholds,
    score: i32,
    status: AgentStatus,
    has_owner: bool,
    drifted: bool,
) -> TrustState {
    if status != AgentStatus::Active || !has_owner {
        return TrustState::Untrusted;
    }
    let s = thresholds.state(score);
    if drifted {
        s.min(TrustState::Pending)
    } else {
        s
    }
}

fn effective(
    computed: TrustState,
    override_state: Option<TrustState>,
    status: AgentStatus,
) -> TrustState {
    // A suspended or revoked agent is never trusted, whatever the override says.
    match (override_state, status) {
        (_, AgentStatus::Suspended | AgentStatus::Revoked) => TrustState::Untrusted,
        (Some(o), _) => o,
        (None, _) => computed,
    }
}

/// The effective trust state and score, with the same rules as [`evaluate`] but without
/// writing the signals' explanations: what the token endpoint, the broker and the MCP gateway
/// check on every request. A test compares the two over every combination of the facts.
pub fn state_and_score(i: &StateInputs<'_>) -> (TrustState, i32) {
    let score = score(i);
    let computed = computed_state(&i.thresholds, score, i.status, i.has_owner, i.drifted);
    (effective(computed, i.override_state, i.status), score)
}

/// The effective trust state alone (see [`state_and_score`]).
pub fn state(i: &StateInputs<'_>) -> TrustState {
    state_and_score(i).0
}

/// Whether an agent of `state` and `score` is below a floor, and which: the connection's (or
/// MCP server's) state floor, its minimum score, or the organisation's minimum score. `None`
/// when it passes all three. The one rule the token endpoint, the broker and the MCP gateway
/// apply at request time.
pub fn below_floor(
    state: TrustState,
    score: i32,
    floor: TrustState,
    min_score: Option<i32>,
    organisation_floor: i32,
) -> Option<String> {
    if state < floor {
        return Some(format!("it requires at least {floor}"));
    }
    if let Some(m) = min_score.filter(|m| score < *m) {
        return Some(format!("it requires a score of at least {m}"));
    }
    if score < organisation_floor {
        return Some(format!(
            "the organisation requires a score of at least {organisation_floor}"
        ));
    }
    None
}

/// Evaluate an agent's trust, each signal explained.
pub fn evaluate(i: TrustInputs<'_>) -> TrustReport {
    use SignalOutcome::*;
    let mut signals = Vec::with_capacity(12);

    signals.push(match i.status {
        AgentStatus::Active => signal(
            "status",
            "Agent is active",
            Pass,
            POINTS_STATUS,
            "active".into(),
        ),
        AgentStatus::Suspended => signal(
            "status",
            "Agent is active",
            Fail,
            0,
            "suspended: it gets nothing and stays UNTRUSTED until someone resumes it".into(),
        ),
        AgentStatus::Revoked => signal(
            "status",
            "Agent is active",
            Fail,
            0,
            "revoked: this is final".into(),
        ),
    });

    signals.push(if i.has_owner {
        signal(
            "owner",
            "Accountable owner assigned",
            Pass,
            POINTS_OWNER,
            "a team member answers for it".into(),
        )
    } else {
        signal(
            "owner",
            "Accountable owner assigned",
            Fail,
            0,
            "no owner, so it stays UNTRUSTED: assign a team member with `mandate agent edit \
             NAME --owner MEMBER`"
                .into(),
        )
    });

    let active: Vec<&AgentKey> = i.keys.iter().filter(|k| k.is_active(i.now)).collect();
    signals.push(if active.is_empty() {
        signal(
            "key",
            "Own key registered",
            Warn,
            0,
            "no active key: generate one (`mandate agent rotate-key NAME`) or register the \
             agent's public key"
                .into(),
        )
    } else {
        signal(
            "key",
            "Own key registered",
            Pass,
            POINTS_KEY,
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
                0,
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
                POINTS_KEY_AGE,
                format!("newest key is {} days old", age.num_days()),
            )
        });
    }

    signals.push(if i.scopes.is_empty() {
        signal(
            "scopes",
            "Scopes are narrow",
            Warn,
            0,
            "no scopes granted yet: it can do nothing until you grant the actions it needs".into(),
        )
    } else if i.scopes.len() > NARROW_SCOPE_LIMIT {
        signal(
            "scopes",
            "Scopes are narrow",
            Warn,
            0,
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
            POINTS_SCOPES,
            format!("{} explicit scope(s), no wildcards", i.scopes.len()),
        )
    });

    let age = i.now - i.created_at;
    signals.push(if age < Duration::hours(TRACK_RECORD_HOURS) {
        signal(
            "track_record",
            "Track record",
            Warn,
            0,
            format!(
                "registered {} h ago: its track record counts after {TRACK_RECORD_HOURS} hours",
                age.num_hours().max(0)
            ),
        )
    } else {
        signal(
            "track_record",
            "Track record",
            Pass,
            POINTS_TRACK_RECORD,
            format!("registered {} days ago", age.num_days()),
        )
    });

    signals.push(match i.drift {
        Some(d) => signal(
            "review",
            "Configuration reviewed",
            Warn,
            0,
            format!(
                "its configuration changed (version {} now, {} reviewed), so it is at most \
                 PENDING: a member reviews it with `mandate agent review NAME` or in the app",
                d.config_version, d.reviewed_version
            ),
        ),
        None => signal(
            "review",
            "Configuration reviewed",
            Pass,
            0,
            "a member reviewed this configuration version".into(),
        ),
    });

    signals.extend(i.behaviour.iter().cloned());

    for a in i.attestations.iter().filter(|a| i.now < a.expires_at) {
        signals.push(signal(
            &format!("attestation:{}", a.attestor),
            &format!("Attested by {}", a.attestor),
            match a.result {
                attest::ReviewResult::Pass => Pass,
                attest::ReviewResult::Fail => Fail,
            },
            a.points,
            format!(
                "review {} for this configuration version, valid until {}",
                a.result.as_str(),
                a.expires_at.format("%Y-%m-%d %H:%M UTC")
            ),
        ));
    }

    let score = signals
        .iter()
        .map(|s| s.contribution)
        .sum::<i32>()
        .clamp(0, 100);
    let computed = computed_state(
        &i.thresholds,
        score,
        i.status,
        i.has_owner,
        i.drift.is_some(),
    );
    let state = effective(computed, i.override_.as_ref().map(|o| o.state), i.status);
    TrustReport {
        state,
        computed,
        score,
        signals,
        override_: i.override_,
        thresholds: i.thresholds,
        drift: i.drift,
        behaviour_at: i.behaviour_at,
        organisation_floor: 0,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
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

    fn inputs<'a>(
        status: AgentStatus,
        keys: &'a [AgentKey],
        scopes: &'a [Scope],
        age_h: i64,
        o: Option<TrustOverride>,
    ) -> TrustInputs<'a> {
        let now = Utc::now();
        TrustInputs {
            status,
            has_owner: true,
            keys,
            scopes,
            created_at: now - Duration::hours(age_h),
            now,
            override_: o,
            behaviour: Vec::new(),
            behaviour_at: None,
            attestations: Vec::new(),
            drift: None,
            thresholds: Thresholds::default(),
        }
    }

    fn eval(
        status: AgentStatus,
        keys: &[AgentKey],
        scopes: &[Scope],
        age_h: i64,
        o: Option<TrustOverride>,
    ) -> TrustReport {
        evaluate(inputs(status, keys, scopes, age_h, o))
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
        assert_eq!((s.outcome, s.contribution), (SignalOutcome::Warn, 0));
        let old = eval(AgentStatus::Active, &keys, &scopes, 48, None);
        assert_eq!(old.state, TrustState::Trusted);
        assert_eq!(old.score, CHECKLIST_MAX);
    }

    #[test]
    fn the_score_is_the_sum_of_the_signals_held_within_0_to_100() {
        let now = Utc::now();
        let keys = [key(now)];
        let scopes = [Scope::parse("github:repo.read").unwrap()];
        let mut i = inputs(AgentStatus::Active, &keys, &scopes, 48, None);
        i.behaviour = vec![signal("volume", "v", SignalOutcome::Pass, 5, "x".into())];
        i.attestations = vec![CountedAttestation {
            attestor: "ci".into(),
            points: 20,
            result: attest::ReviewResult::Pass,
            expires_at: now + Duration::days(1),
        }];
        let r = evaluate(i);
        assert_eq!(r.score, 95);
        assert_eq!(r.signals.iter().map(|s| s.contribution).sum::<i32>(), 95);
        let mut i = inputs(AgentStatus::Active, &keys, &scopes, 1, None);
        i.behaviour = vec![signal("denials", "d", SignalOutcome::Fail, -70, "x".into())];
        let r = evaluate(i);
        assert_eq!((r.score, r.state), (0, TrustState::Untrusted));
    }

    #[test]
    fn drift_keeps_a_high_score_at_pending_until_reviewed() {
        let now = Utc::now();
        let keys = [key(now)];
        let scopes = [Scope::parse("github:repo.read").unwrap()];
        let mut i = inputs(AgentStatus::Active, &keys, &scopes, 48, None);
        i.drift = Some(Drift {
            config_version: 3,
            reviewed_version: 2,
        });
        let r = evaluate(i);
        assert_eq!((r.score, r.state), (CHECKLIST_MAX, TrustState::Pending));
        let review = r.signals.iter().find(|s| s.id == "review").unwrap();
        assert!(
            review.detail.contains("mandate agent review"),
            "{}",
            review.detail
        );
    }

    #[test]
    fn thresholds_change_the_state_not_the_score() {
        let now = Utc::now();
        let keys = [key(now)];
        let scopes = [Scope::parse("github:repo.read").unwrap()];
        let mut i = inputs(AgentStatus::Active, &keys, &scopes, 48, None);
        i.thresholds = Thresholds {
            trusted_min: 90,
            pending_min: 50,
        };
        let r = evaluate(i);
        assert_eq!((r.score, r.state), (CHECKLIST_MAX, TrustState::Pending));
    }

    /// `state_and_score` (the endpoint's) and `evaluate` (what people see) agree on every
    /// combination of status, owner, keys (none, fresh, stale, expired, mixed), scope counts,
    /// agent age, override, behaviour, attestations (live and expired), drift and thresholds.
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
        let overrides = [None, Some(TrustState::Trusted), Some(TrustState::Untrusted)];
        let behaviours = [0, 15, -40, -70];
        let attestation_sets: Vec<Vec<(i32, DateTime<Utc>)>> = vec![
            vec![],
            vec![(20, now + Duration::days(1))],
            vec![
                (30, now - Duration::seconds(1)),
                (-10, now + Duration::days(1)),
            ],
        ];
        let thresholds = [
            Thresholds::default(),
            Thresholds {
                trusted_min: 90,
                pending_min: 20,
            },
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
                                for b in behaviours {
                                    for atts in &attestation_sets {
                                        for drifted in [false, true] {
                                            for t in thresholds {
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
                                                    behaviour: vec![signal(
                                                        "denials",
                                                        "d",
                                                        SignalOutcome::Pass,
                                                        b,
                                                        String::new(),
                                                    )],
                                                    behaviour_at: None,
                                                    attestations: atts
                                                        .iter()
                                                        .map(|(p, e)| CountedAttestation {
                                                            attestor: "a".into(),
                                                            points: *p,
                                                            result: attest::ReviewResult::Pass,
                                                            expires_at: *e,
                                                        })
                                                        .collect(),
                                                    drift: drifted.then_some(Drift {
                                                        config_version: 2,
                                                        reviewed_version: 1,
                                                    }),
                                                    thresholds: t,
                                                });
                                                let times: Vec<_> = keys
                                                    .iter()
                                                    .map(|k| (k.created_at, k.expires_at))
                                                    .collect();
                                                let narrow = state_and_score(&StateInputs {
                                                    status,
                                                    has_owner,
                                                    key_times: &times,
                                                    scope_count: scopes.len(),
                                                    created_at,
                                                    now,
                                                    override_state: o,
                                                    behaviour_points: b,
                                                    attestations: atts,
                                                    drifted,
                                                    thresholds: t,
                                                });
                                                assert_eq!(
                                                    narrow,
                                                    (full.state, full.score),
                                                    "{status:?} owner={has_owner} keys={keys:?} \
                                                     scopes={} age={age_h}h override={o:?} \
                                                     behaviour={b} attestations={atts:?} \
                                                     drift={drifted} {t:?}",
                                                    scopes.len()
                                                );
                                                seen.insert(full.state);
                                            }
                                        }
                                    }
                                }
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
