//! Limits on proxied calls, per agent and connection: a rate limit (calls per minute, a token
//! bucket held in memory) and a daily budget of cost units (held in SQLite, so it survives
//! restarts and every process sees the same numbers).
//!
//! The budget rule: a call costs its action's units (1 unless set). Once 90 % of the day's
//! budget is used, only actions marked essential pass; a call that would go over the budget
//! is refused, essential or not. Days are UTC days.
//!
//! What it is not: the token endpoint's rate limit on token requests (`oauth::policy`);
//! this one counts calls through the proxy.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

/// Where an agent stands against a budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(rename_all = "snake_case")]
pub enum BudgetState {
    /// No budget is set.
    Unlimited,
    /// Under 90 %.
    Ok,
    /// At or over 90 %: only essential actions pass.
    EssentialOnly,
    /// Nothing left.
    Exhausted,
}

/// The state for `used` units of `budget`.
pub fn budget_state(budget: Option<u64>, used: u64) -> BudgetState {
    match budget {
        None => BudgetState::Unlimited,
        Some(b) if used >= b => BudgetState::Exhausted,
        Some(b) if used.saturating_mul(10) >= b.saturating_mul(9) => BudgetState::EssentialOnly,
        Some(_) => BudgetState::Ok,
    }
}

/// Why the budget refused a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetRefusal {
    /// The call would go over the budget.
    Exhausted { used: u64, budget: u64, cost: u64 },
    /// 90 % is used and the action is not essential.
    EssentialOnly { used: u64, budget: u64 },
}

impl BudgetRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            BudgetRefusal::Exhausted { .. } => "budget_exhausted",
            BudgetRefusal::EssentialOnly { .. } => "budget_reserved_for_essential",
        }
    }

    /// A sentence for the agent and the audit trail.
    pub fn describe(&self, connection: &str, action: &str) -> String {
        match self {
            BudgetRefusal::Exhausted { used, budget, cost } => format!(
                "the daily budget of this agent on '{connection}' is exhausted ({used} of \
                 {budget} units used; {action} costs {cost}); it resets at 00:00 UTC, or a person \
                 can raise it with `mandate connection edit {connection} --daily-budget N`"
            ),
            BudgetRefusal::EssentialOnly { used, budget } => format!(
                "90% of this agent's daily budget on '{connection}' is used ({used} of {budget} \
                 units): only essential actions pass now, and {action} is not one; it resets at \
                 00:00 UTC"
            ),
        }
    }
}

/// Decide whether a call of `cost` units may use the budget.
pub fn check_budget(
    budget: Option<u64>,
    used: u64,
    cost: u64,
    essential: bool,
) -> Result<(), BudgetRefusal> {
    let Some(budget) = budget else {
        return Ok(());
    };
    if used.saturating_add(cost) > budget {
        return Err(BudgetRefusal::Exhausted { used, budget, cost });
    }
    if !essential && budget_state(Some(budget), used) != BudgetState::Ok {
        return Err(BudgetRefusal::EssentialOnly { used, budget });
    }
    Ok(())
}

/// Token buckets keyed by (agent id, connection id): `per_minute` sustained, up to
/// `per_minute` at once.
#[derive(Debug, Default)]
pub struct RateBuckets {
    buckets: Mutex<HashMap<(String, String), (f64, i64)>>,
}

impl RateBuckets {
    /// Take one call at `now_ms`; `Err(seconds to wait)` when the bucket is empty.
    pub fn take(
        &self,
        agent_id: &str,
        connection_id: &str,
        per_minute: u32,
        now_ms: i64,
    ) -> Result<(), u64> {
        let Ok(mut b) = self.buckets.lock() else {
            return Err(1);
        };
        let rate = f64::from(per_minute) / 60_000.0;
        let cap = f64::from(per_minute.max(1));
        let (tokens, last) = b
            .entry((agent_id.to_string(), connection_id.to_string()))
            .or_insert((cap, now_ms));
        let elapsed = (now_ms - *last).max(0) as f64;
        *tokens = (*tokens + elapsed * rate).min(cap);
        *last = now_ms;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            let wait_ms = if rate > 0.0 {
                (1.0 - *tokens) / rate
            } else {
                60_000.0
            };
            Err((wait_ms / 1000.0).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ninety_percent_reserves_the_rest_for_essential_actions() {
        assert_eq!(check_budget(None, 1_000_000, 5, false), Ok(()));
        assert_eq!(check_budget(Some(10), 8, 1, false), Ok(()));
        assert_eq!(
            check_budget(Some(10), 9, 1, false),
            Err(BudgetRefusal::EssentialOnly {
                used: 9,
                budget: 10
            })
        );
        assert_eq!(check_budget(Some(10), 9, 1, true), Ok(()));
        assert_eq!(
            check_budget(Some(10), 10, 1, true),
            Err(BudgetRefusal::Exhausted {
                used: 10,
                budget: 10,
                cost: 1
            })
        );
        assert!(check_budget(Some(10), 5, 6, true).is_err(), "would go over");
        assert_eq!(budget_state(Some(10), 9), BudgetState::EssentialOnly);
        assert_eq!(budget_state(Some(10), 10), BudgetState::Exhausted);
        assert_eq!(budget_state(Some(10), 0), BudgetState::Ok);
    }

    #[test]
    fn bucket_refills_with_time() {
        let b = RateBuckets::default();
        assert!(b.take("a", "c", 2, 0).is_ok());
        assert!(b.take("a", "c", 2, 0).is_ok());
        assert_eq!(b.take("a", "c", 2, 0), Err(30));
        assert!(b.take("other", "c", 2, 0).is_ok(), "per agent");
        assert!(b.take("a", "c", 2, 30_000).is_ok());
    }
}
