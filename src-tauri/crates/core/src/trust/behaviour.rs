//! Behaviour signals: what an agent does now, compared with its own audit history.
//!
//! Why here and not on the request path: the token endpoint must stay as fast as it is
//! (docs/BENCHMARKS.md). A refresher ([`crate::Mandate::refresh_trust`], run every
//! [`REFRESH_EVERY_SECS`] seconds by `mandate serve` and the app, and before the CLI shows an
//! agent) reads the audit events written since its last run, adds them to small aggregates
//! (requests and denials per agent per hour and per minute, and every distinct action each
//! agent was seen doing), computes each agent's signals and stores them with their points
//! (`trust_behaviour`). The request path reads only that sum, through the registry memo; a
//! change raises the registry generation so the next request sees it.
//!
//! The signals (each says what was seen and what would clear it):
//! - `denials`: refusals in the last [`WINDOW_MINUTES`] minutes against the agent's usual
//!   rate; a burst costs [`PENALTY_DENIAL_BURST`] points, enough to put any agent below the
//!   default PENDING threshold.
//! - `volume`: requests this hour against its busiest hour of the last [`BASELINE_DAYS`] days.
//! - `new_actions`: actions (with their connection, MCP tool or path) never seen before, in
//!   the last hour.
//! - `hours`: requests at an hour of day (UTC) it never worked in the last 7 days.
//!
//! An agent with less than a day of history is "learning": only `denials` counts (a burst of
//! refusals needs no baseline). Budget burn rate is not a signal yet.
//!
//! What it is not: a detector of attacks, or a decision. The points feed the score; the floors
//! and thresholds decide.

use std::collections::{BTreeSet, HashMap};

use crate::store::{Tx, params};
use chrono::{DateTime, Duration, Timelike, Utc};

use super::{SignalOutcome, TrustSignal};
use crate::Mandate;
use crate::error::{Error, Result};
use crate::registry::{parse_time, ts};

/// How often `mandate serve` and the app refresh the signals.
pub const REFRESH_EVERY_SECS: u64 = 10;
/// "Now" for denials: the last this many minutes.
pub const WINDOW_MINUTES: i64 = 10;
/// The baseline: this many days before the current hour.
pub const BASELINE_DAYS: i64 = 7;
/// History an agent needs before volume, new actions and hours count.
pub const LEARNING_HOURS: i64 = 24;
/// Fewest denials in the window that can be a burst.
pub const DENIAL_BURST_MIN: u32 = 5;
/// How long a first-time action counts as new.
pub const NEW_ACTION_MINUTES: i64 = 60;

pub const POINTS_DENIALS: i32 = 0;
pub const PENALTY_DENIAL_BURST: i32 = -70;
pub const POINTS_VOLUME: i32 = 5;
pub const PENALTY_VOLUME: i32 = -15;
pub const POINTS_NEW_ACTIONS: i32 = 5;
pub const PENALTY_NEW_ACTIONS: i32 = -10;
pub const POINTS_HOURS: i32 = 5;
pub const PENALTY_HOURS: i32 = -10;
/// Spending a connection's daily budget at a pace that would overrun it, well above the
/// agent's usual day: the score loses this much until the pace falls back or the day ends.
pub const PENALTY_BURN_RATE: i32 = -15;
/// The pace must also be this many times the agent's usual daily spend to count as a burn.
pub const BURN_RATE_FACTOR: u64 = 2;

/// Events read per transaction, so the refresher never holds the write lock for long.
const BATCH: i64 = 2000;

/// What the aggregates hold about one agent, as of one moment.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    /// `(hour start, requests, denials)` of each hour with activity in the baseline (the
    /// [`BASELINE_DAYS`] days before the current hour).
    pub baseline: Vec<(DateTime<Utc>, u32, u32)>,
    pub this_hour_requests: u32,
    pub recent_requests: u32,
    pub recent_denials: u32,
    /// Actions first seen in the last [`NEW_ACTION_MINUTES`] minutes.
    pub new_actions: Vec<String>,
    /// The start of the agent's oldest aggregated hour.
    pub first_seen: Option<DateTime<Utc>>,
    /// Its spend on each connection with a daily budget that it used today.
    pub budgets: Vec<BudgetUse>,
}

/// One agent's spend against one connection's daily budget (cost units, `broker_usage`).
#[derive(Debug, Clone, Default)]
pub struct BudgetUse {
    pub connection: String,
    pub daily_budget: u64,
    /// Spent so far this UTC day.
    pub today: u64,
    /// Spent over the [`BASELINE_DAYS`] days before today (days without use count as 0).
    pub baseline_total: u64,
}

/// The budget burn-rate signal: for each budgeted connection, today's spend projected to the
/// end of the UTC day (at least an hour of the day counted, so the first minutes do not
/// extrapolate wildly) against the budget and against the agent's usual day. Fails when the
/// projection overruns the budget and is more than [`BURN_RATE_FACTOR`] times its usual day;
/// `None` when it has no budgeted connection.
fn burn_rate(budgets: &[BudgetUse], now: DateTime<Utc>) -> Option<TrustSignal> {
    use SignalOutcome::*;
    if budgets.is_empty() {
        return None;
    }
    let since_midnight = i64::from(now.num_seconds_from_midnight()).max(3600);
    let mut worst: Option<(&BudgetUse, u64, u64)> = None;
    for b in budgets {
        let projected = u64::try_from(i128::from(b.today) * 86_400 / i128::from(since_midnight))
            .unwrap_or(u64::MAX);
        let usual = b.baseline_total / BASELINE_DAYS as u64;
        let burning = projected > b.daily_budget && projected > BURN_RATE_FACTOR * usual.max(1);
        if burning
            && worst.is_none_or(|(w, p, _)| {
                projected * w.daily_budget.max(1) > p * b.daily_budget.max(1)
            })
        {
            worst = Some((b, projected, usual));
        }
    }
    let at = now.format("%H:%M");
    Some(match worst {
        Some((b, projected, usual)) => sig(
            "budget_burn",
            "Budget spent at its usual pace",
            Fail,
            PENALTY_BURN_RATE,
            format!(
                "{} of the {} units of '{}' spent by {at} UTC, on course for {projected} by \
                 midnight (its usual day over the last {BASELINE_DAYS} days: {usual}). Clears \
                 when the pace falls back within the budget or at midnight UTC, when the \
                 day's budget starts again; if the spending is expected, raise the budget \
                 (`mandate connection edit {} --daily-budget N`)",
                b.today, b.daily_budget, b.connection, b.connection
            ),
        ),
        None => {
            let shown: Vec<String> = budgets
                .iter()
                .take(3)
                .map(|b| format!("{} of {} on '{}'", b.today, b.daily_budget, b.connection))
                .collect();
            sig(
                "budget_burn",
                "Budget spent at its usual pace",
                Pass,
                0,
                format!("spent today by {at} UTC: {}", shown.join(", ")),
            )
        }
    })
}

fn sig(id: &str, label: &str, outcome: SignalOutcome, points: i32, detail: String) -> TrustSignal {
    TrustSignal {
        id: id.into(),
        label: label.into(),
        outcome,
        contribution: points,
        detail,
    }
}

/// The behaviour signals of `a` at `now`.
pub fn signals(a: &Activity, now: DateTime<Utc>) -> Vec<TrustSignal> {
    use SignalOutcome::*;
    let learning = a
        .first_seen
        .is_none_or(|f| now - f < Duration::hours(LEARNING_HOURS));
    let mut out = Vec::with_capacity(5);
    out.extend(burn_rate(&a.budgets, now));

    let baseline_denials: u32 = a.baseline.iter().map(|(_, _, d)| d).sum();
    let windows = (BASELINE_DAYS * 24 * 60 / WINDOW_MINUTES) as f64;
    let expected = f64::from(baseline_denials) / windows;
    let d = a.recent_denials;
    let usual = if baseline_denials == 0 {
        "it had none in the last 7 days".to_string()
    } else {
        format!("{expected:.1} per {WINDOW_MINUTES} minutes is usual")
    };
    out.push(
        if d >= DENIAL_BURST_MIN && f64::from(d) > 3.0 * expected + 3.0 {
            sig(
                "denials",
                "Denials as usual",
                Fail,
                PENALTY_DENIAL_BURST,
                format!(
                    "{d} of its last {} requests were refused in the last {WINDOW_MINUTES} minutes \
                 ({usual}). Clears once the last {WINDOW_MINUTES} minutes hold fewer than \
                 {DENIAL_BURST_MIN} refusals: find out what it tries (the audit trail lists \
                 each refusal) and fix its requests or its scopes, or suspend it",
                    a.recent_requests.max(d)
                ),
            )
        } else if d >= 3 {
            sig(
                "denials",
                "Denials as usual",
                Warn,
                0,
                format!(
                    "{d} refusals in the last {WINDOW_MINUTES} minutes ({usual}); \
                 {DENIAL_BURST_MIN} or more would be a burst"
                ),
            )
        } else {
            sig(
                "denials",
                "Denials as usual",
                Pass,
                POINTS_DENIALS,
                format!("{d} refusals in the last {WINDOW_MINUTES} minutes ({usual})"),
            )
        },
    );

    if learning {
        out.push(sig(
            "behaviour_learning",
            "Behaviour baseline",
            Warn,
            0,
            format!(
                "less than {LEARNING_HOURS} hours of activity: volume, new actions and working \
                 hours count once it has a day of history"
            ),
        ));
        return out;
    }

    let peak = a.baseline.iter().map(|(_, r, _)| *r).max().unwrap_or(0);
    let limit = (peak * 3).max(30);
    out.push(if a.this_hour_requests > limit {
        sig(
            "volume",
            "Request volume as usual",
            Fail,
            PENALTY_VOLUME,
            format!(
                "{} requests this hour; its busiest hour of the last 7 days had {peak}. Clears \
                 when an hour stays under {limit}",
                a.this_hour_requests
            ),
        )
    } else {
        sig(
            "volume",
            "Request volume as usual",
            Pass,
            POINTS_VOLUME,
            format!(
                "{} requests this hour (busiest hour of the last 7 days: {peak})",
                a.this_hour_requests
            ),
        )
    });

    out.push(if a.new_actions.is_empty() {
        sig(
            "new_actions",
            "Only familiar actions",
            Pass,
            POINTS_NEW_ACTIONS,
            "nothing it had not done before in the last hour".into(),
        )
    } else {
        let shown: Vec<&str> = a.new_actions.iter().take(3).map(String::as_str).collect();
        let more = a.new_actions.len().saturating_sub(shown.len());
        sig(
            "new_actions",
            "Only familiar actions",
            Fail,
            PENALTY_NEW_ACTIONS,
            format!(
                "first time in the last hour: {}{}. Clears {NEW_ACTION_MINUTES} minutes after \
                 the first use; if it should not do this, remove the scope or suspend it",
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ),
        )
    });

    let worked: BTreeSet<u32> = a
        .baseline
        .iter()
        .filter(|(_, r, _)| *r > 0)
        .map(|(h, _, _)| h.hour())
        .collect();
    let hour = now.hour();
    out.push(if a.this_hour_requests > 0 && !worked.contains(&hour) {
        sig(
            "hours",
            "Working hours as usual",
            Fail,
            PENALTY_HOURS,
            format!(
                "requests at {hour:02}:00 UTC, an hour it never worked in the last 7 days \
                 (it worked at {}). Clears when the hour ends",
                worked
                    .iter()
                    .map(|h| format!("{h:02}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    } else {
        sig(
            "hours",
            "Working hours as usual",
            Pass,
            POINTS_HOURS,
            format!("{hour:02}:00 UTC is within its usual hours"),
        )
    });
    out
}

/// Whether an audit action is a request an agent made (what behaviour counts).
fn is_request(action: &str) -> bool {
    action.starts_with("token.") || action.starts_with("proxy.") || action.starts_with("mcp.")
}

/// What "doing the same thing" means for new actions: the action, its target and, when the
/// event names one, the MCP tool, broker action or path. Also whether a refusal says nothing
/// new about the agent, so it is no denial here: a call held for a person's approval
/// (`approval_pending`), or a refusal that only enforced the agent's own trust verdict
/// ([`crate::audit::TRUST_GATE`]; counting those would keep an agent that a burst of denials
/// made UNTRUSTED there for as long as it keeps calling, reviewed or not).
fn action_key(action: &str, body: &[u8]) -> (String, bool) {
    #[derive(serde::Deserialize)]
    struct Body {
        target: Option<Target>,
        #[serde(default)]
        details: serde_json::Value,
    }
    #[derive(serde::Deserialize)]
    struct Target {
        name: Option<String>,
    }
    let mut key = action
        .trim_end_matches(".denied")
        .trim_end_matches(".allowed")
        .to_string();
    let mut waiting = false;
    // Token requests are the bulk of the trail and their body says nothing new about what the
    // agent does (the scopes are its grants): counted without reading it, except a refusal's.
    if action.starts_with("token.") {
        let gate = action == "token.denied"
            && serde_json::from_slice::<Body>(body).is_ok_and(|b| is_trust_gate(&b.details));
        return (key, gate);
    }
    if let Ok(b) = serde_json::from_slice::<Body>(body) {
        waiting = b.details.get("error").and_then(|e| e.as_str()) == Some("approval_pending")
            || is_trust_gate(&b.details);
        if let Some(n) = b.target.and_then(|t| t.name) {
            key.push(' ');
            key.push_str(&n);
        }
        for k in ["tool", "action", "path"] {
            if let Some(v) = b.details.get(k).and_then(|v| v.as_str()) {
                key.push(' ');
                key.push_str(v);
                break;
            }
        }
    }
    (key.chars().take(200).collect(), waiting)
}

fn is_trust_gate(details: &serde_json::Value) -> bool {
    details.get(crate::audit::TRUST_GATE) == Some(&serde_json::Value::Bool(true))
}

#[derive(Default)]
struct Counts {
    requests: u32,
    denials: u32,
}

impl Mandate {
    /// Bring every agent's behaviour signals up to date with the audit trail: fold the events
    /// written since the last run into the aggregates, then recompute each active agent's
    /// signals and store those that changed. Returns how many agents' signals changed.
    ///
    /// Safe to call from several processes: each batch runs in one write transaction and
    /// moves the shared cursor.
    pub fn refresh_trust(&self) -> Result<usize> {
        loop {
            let read = self.write(fold_batch)?;
            if read < BATCH {
                break;
            }
        }
        self.write(|tx, now| {
            let ids: Vec<String> = tx.query_map(
                "SELECT id FROM agents WHERE status = 'active' ORDER BY id",
                params![],
                |r| r.get(0),
            )?;
            let mut changed = 0;
            for id in ids {
                let a = activity(tx, &id, now)?;
                let s = signals(&a, now);
                let points: i32 = s.iter().map(|s| s.contribution).sum();
                let json = serde_json::to_string(&s)
                    .map_err(|e| Error::Storage(format!("could not write signals: {e}")))?;
                changed += tx.execute(
                    "INSERT INTO trust_behaviour (agent_id, points, signals, computed_at)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (agent_id) DO UPDATE SET points = excluded.points,
                         signals = excluded.signals, computed_at = excluded.computed_at
                     WHERE trust_behaviour.points <> excluded.points
                        OR trust_behaviour.signals <> excluded.signals",
                    params![id, points, json, ts(now)],
                )?;
            }
            Ok(changed)
        })
    }
}

fn hour_key(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H").to_string()
}

fn minute_key(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M").to_string()
}

/// Fold up to [`BATCH`] new audit events into the aggregates; returns how many were read.
fn fold_batch(tx: &Tx<'_>, now: DateTime<Utc>) -> Result<i64> {
    let cursor: i64 = tx.query_row(
        "SELECT last_seq FROM trust_refresh_cursor WHERE id = 1",
        params![],
        |r| r.get(0),
    )?;
    let rows = tx.query_map(
        "SELECT seq, time, agent_id, action, decision, body FROM audit_events
         WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        params![cursor, BATCH],
        |r| {
            Ok((
                r.get::<i64>(0)?,
                r.get::<String>(1)?,
                r.get::<Option<String>>(2)?,
                r.get::<String>(3)?,
                r.get::<String>(4)?,
                r.get::<Vec<u8>>(5)?,
            ))
        },
    )?;
    let read = rows.len() as i64;
    let mut last = cursor;
    let mut hours: HashMap<(String, String), Counts> = HashMap::new();
    let mut minutes: HashMap<(String, String), Counts> = HashMap::new();
    let mut seen: HashMap<(String, String), String> = HashMap::new();
    for (seq, time, agent, action, decision, body) in rows {
        last = seq;
        let Some(agent) = agent else { continue };
        if !is_request(&action) {
            continue;
        }
        let Ok(t) = parse_time(&time) else { continue };
        let (key, waiting) = action_key(&action, &body);
        let deny = decision == "deny" && !waiting;
        for (map, key) in [(&mut hours, hour_key(t)), (&mut minutes, minute_key(t))] {
            let c = map.entry((agent.clone(), key)).or_default();
            c.requests += 1;
            c.denials += u32::from(deny);
        }
        seen.entry((agent, key)).or_insert(time);
    }
    for ((agent, hour), c) in hours {
        tx.execute(
            "INSERT INTO agent_activity_hours (agent_id, hour, requests, denials)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (agent_id, hour) DO UPDATE SET
                 requests = agent_activity_hours.requests + excluded.requests,
                 denials = agent_activity_hours.denials + excluded.denials",
            params![agent, hour, c.requests, c.denials],
        )?;
    }
    let oldest_minute = minute_key(now - Duration::minutes(NEW_ACTION_MINUTES));
    for ((agent, minute), c) in minutes {
        if minute < oldest_minute {
            continue;
        }
        tx.execute(
            "INSERT INTO agent_activity_minutes (agent_id, minute, requests, denials)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (agent_id, minute) DO UPDATE SET
                 requests = agent_activity_minutes.requests + excluded.requests,
                 denials = agent_activity_minutes.denials + excluded.denials",
            params![agent, minute, c.requests, c.denials],
        )?;
    }
    for ((agent, what), first) in seen {
        tx.execute(
            "INSERT INTO agent_activity_seen (agent_id, what, first_seen) VALUES (?1, ?2, ?3)
             ON CONFLICT (agent_id, what) DO NOTHING",
            params![agent, what, first],
        )?;
    }
    tx.execute(
        "DELETE FROM agent_activity_minutes WHERE minute < ?1",
        params![oldest_minute],
    )?;
    tx.execute(
        "DELETE FROM agent_activity_hours WHERE hour < ?1",
        params![hour_key(now - Duration::days(BASELINE_DAYS + 1))],
    )?;
    tx.execute(
        "UPDATE trust_refresh_cursor SET last_seq = ?1 WHERE id = 1",
        params![last],
    )?;
    Ok(read)
}

/// What the aggregates say about agent `id` at `now`.
pub(crate) fn activity(conn: &Tx<'_>, id: &str, now: DateTime<Utc>) -> Result<Activity> {
    let this_hour = hour_key(now);
    let from = hour_key(now - Duration::days(BASELINE_DAYS));
    let mut a = Activity::default();
    let rows = conn.query_map(
        "SELECT hour, requests, denials FROM agent_activity_hours
         WHERE agent_id = ?1 AND hour >= ?2 ORDER BY hour",
        params![id, from],
        |r| Ok((r.get::<String>(0)?, r.get::<u32>(1)?, r.get::<u32>(2)?)),
    )?;
    for (hour, requests, denials) in rows {
        if hour == this_hour {
            a.this_hour_requests = requests;
            continue;
        }
        if hour > this_hour {
            continue;
        }
        let start = parse_time(&format!("{hour}:00:00Z"))?;
        a.baseline.push((start, requests, denials));
    }
    let first: Option<String> = conn
        .query_opt(
            "SELECT MIN(hour) FROM agent_activity_hours WHERE agent_id = ?1",
            params![id],
            |r| r.get(0),
        )?
        .flatten();
    a.first_seen = first
        .map(|h| parse_time(&format!("{h}:00:00Z")))
        .transpose()?;
    let (requests, denials): (Option<i64>, Option<i64>) = conn.query_row(
        "SELECT CAST(SUM(requests) AS BIGINT), CAST(SUM(denials) AS BIGINT)
             FROM agent_activity_minutes
             WHERE agent_id = ?1 AND minute >= ?2",
        params![id, minute_key(now - Duration::minutes(WINDOW_MINUTES - 1))],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    a.recent_requests = u32::try_from(requests.unwrap_or(0)).unwrap_or(u32::MAX);
    a.recent_denials = u32::try_from(denials.unwrap_or(0)).unwrap_or(u32::MAX);
    // Spend against daily budgets: today and the baseline days before it.
    let today = crate::broker::config::day_of(now);
    let first_day = crate::broker::config::day_of(now - Duration::days(BASELINE_DAYS));
    a.budgets = conn
        .query_map(
            "SELECT c.name, b.daily_budget,
                    CAST(coalesce(sum(CASE WHEN u.day = ?2 THEN u.units ELSE 0 END), 0) AS BIGINT),
                    CAST(coalesce(sum(CASE WHEN u.day < ?2 THEN u.units ELSE 0 END), 0) AS BIGINT)
             FROM broker_usage u
             JOIN broker_connections b ON b.connection_id = u.connection_id
             JOIN connections c ON c.id = u.connection_id
             WHERE u.agent_id = ?1 AND u.day >= ?3 AND u.day <= ?2
               AND b.daily_budget IS NOT NULL
             GROUP BY c.name, b.daily_budget
             ORDER BY c.name",
            params![id, today, first_day],
            |r| {
                Ok(BudgetUse {
                    connection: r.get(0)?,
                    daily_budget: r.get(1)?,
                    today: r.get(2)?,
                    baseline_total: r.get(3)?,
                })
            },
        )?
        .into_iter()
        .filter(|b| b.today > 0)
        .collect();
    // New: first seen in the last hour, by an agent whose history is older than that.
    let since = ts(now - Duration::minutes(NEW_ACTION_MINUTES));
    a.new_actions = conn.query_map(
        "SELECT what FROM agent_activity_seen WHERE agent_id = ?1 AND first_seen >= ?2
         ORDER BY first_seen",
        params![id, since],
        |r| r.get(0),
    )?;
    Ok(a)
}

/// The stored behaviour signals of agent `id` and when they were computed.
pub(crate) fn stored(conn: &Tx<'_>, id: &str) -> Result<(Vec<TrustSignal>, Option<DateTime<Utc>>)> {
    let row: Option<(String, String)> = conn.query_opt(
        "SELECT signals, computed_at FROM trust_behaviour WHERE agent_id = ?1",
        params![id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    match row {
        None => Ok((Vec::new(), None)),
        Some((json, at)) => Ok((
            serde_json::from_str(&json)
                .map_err(|e| Error::Storage(format!("stored trust signals are unreadable: {e}")))?,
            Some(parse_time(&at)?),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn find<'a>(s: &'a [TrustSignal], id: &str) -> &'a TrustSignal {
        s.iter().find(|x| x.id == id).unwrap()
    }

    fn history(now: DateTime<Utc>) -> Activity {
        // Three days of work from 09:00 to 17:00 UTC, 20 requests an hour, one denial a day.
        let mut baseline = Vec::new();
        for day in 1..=3 {
            for h in 9..17 {
                let start = (now - Duration::days(day))
                    .with_hour(h)
                    .unwrap()
                    .with_minute(0)
                    .unwrap();
                baseline.push((start, 20, u32::from(h == 12)));
            }
        }
        Activity {
            first_seen: baseline.iter().map(|b| b.0).min(),
            baseline,
            ..Activity::default()
        }
    }

    #[test]
    fn a_burst_of_denials_fails_even_without_a_baseline_and_says_why() {
        let now = t("2026-12-04T10:30:00Z");
        let a = Activity {
            recent_requests: 12,
            recent_denials: 10,
            ..Activity::default()
        };
        let s = signals(&a, now);
        let d = find(&s, "denials");
        assert_eq!(
            (d.outcome, d.contribution),
            (SignalOutcome::Fail, PENALTY_DENIAL_BURST)
        );
        assert!(d.detail.contains("10 of its last 12"), "{}", d.detail);
        assert!(d.detail.contains("Clears"), "{}", d.detail);
        assert_eq!(find(&s, "behaviour_learning").contribution, 0);
    }

    #[test]
    fn spending_a_budget_far_faster_than_usual_fails_the_burn_rate_and_says_what_clears_it() {
        let now = t("2026-12-04T06:00:00Z");
        let mut a = history(now);
        // 80 of 100 units by 06:00: on course for 320, its usual day is 20.
        a.budgets = vec![BudgetUse {
            connection: "openai".into(),
            daily_budget: 100,
            today: 80,
            baseline_total: 140,
        }];
        let s = signals(&a, now);
        let burn = find(&s, "budget_burn");
        assert_eq!(burn.outcome, SignalOutcome::Fail, "{burn:?}");
        assert_eq!(burn.contribution, PENALTY_BURN_RATE);
        assert!(burn.detail.contains("on course for 320"), "{}", burn.detail);
        assert!(burn.detail.contains("usual day"), "{}", burn.detail);
        assert!(burn.detail.contains("midnight UTC"), "{}", burn.detail);
        assert!(
            !burn.detail.contains("  "),
            "the sentence carries the source's indentation: {}",
            burn.detail
        );

        // The same spend is usual for an agent that spends about this every day.
        a.budgets[0].baseline_total = 7 * 300;
        assert_eq!(
            find(&signals(&a, now), "budget_burn").outcome,
            SignalOutcome::Pass
        );
        // And a slow pace within the budget passes whatever its history.
        a.budgets[0] = BudgetUse {
            connection: "openai".into(),
            daily_budget: 100,
            today: 10,
            baseline_total: 0,
        };
        let s = signals(&a, now);
        assert_eq!(find(&s, "budget_burn").outcome, SignalOutcome::Pass);
        assert_eq!(find(&s, "budget_burn").contribution, 0);
        // No budgeted connection used today: no such signal.
        a.budgets.clear();
        assert!(!signals(&a, now).iter().any(|s| s.id == "budget_burn"));
    }

    #[test]
    fn a_usual_day_passes_every_signal() {
        let now = t("2026-12-04T10:30:00Z");
        let mut a = history(now);
        a.this_hour_requests = 15;
        let s = signals(&a, now);
        assert!(s.iter().all(|x| x.outcome == SignalOutcome::Pass), "{s:?}");
        assert_eq!(
            s.iter().map(|x| x.contribution).sum::<i32>(),
            POINTS_DENIALS + POINTS_VOLUME + POINTS_NEW_ACTIONS + POINTS_HOURS
        );
    }

    #[test]
    fn night_work_new_actions_and_floods_fail_naming_what_was_seen() {
        let now = t("2026-12-04T03:10:00Z");
        let mut a = history(now);
        a.this_hour_requests = 500;
        a.new_actions = vec!["proxy github DELETE /repos/x".into()];
        let s = signals(&a, now);
        assert_eq!(find(&s, "hours").contribution, PENALTY_HOURS);
        assert!(find(&s, "hours").detail.contains("03:00"));
        assert_eq!(find(&s, "volume").contribution, PENALTY_VOLUME);
        assert!(find(&s, "volume").detail.contains("500"));
        assert!(find(&s, "new_actions").detail.contains("DELETE /repos/x"));
    }

    #[test]
    fn the_usual_denial_rate_is_no_burst() {
        let now = t("2026-12-04T10:30:00Z");
        let mut a = history(now);
        // An agent refused 40 times an hour all week: 5 in ten minutes is its normal.
        for b in &mut a.baseline {
            b.2 = 40;
        }
        a.recent_requests = 20;
        a.recent_denials = 5;
        let d = signals(&a, now);
        assert_ne!(find(&d, "denials").outcome, SignalOutcome::Fail);
    }

    #[test]
    fn a_refusal_that_only_enforced_the_trust_floor_is_no_denial_of_the_agent() {
        for action in ["token.denied", "proxy.denied", "mcp.denied"] {
            let gated = br#"{"details":{"error":"access_denied","trust_gate":true}}"#;
            let plain = br#"{"details":{"error":"access_denied"}}"#;
            assert!(action_key(action, gated).1, "{action} at the floor");
            assert!(!action_key(action, plain).1, "{action} for another reason");
        }
        let held = br#"{"details":{"error":"approval_pending"}}"#;
        assert!(action_key("proxy.denied", held).1);
        // A body that is not JSON is a denial like any other.
        assert!(!action_key("token.denied", b"not json").1);
    }
}
