//! The broker's settings per connection (credential placement, rate limit, daily budget,
//! action costs and essential actions), changing them, and reading an agent's budget use.
//!
//! Settings live in the tables of migration 004 beside the registry's `connections`; a
//! connection without a row uses the defaults (bearer, no limit, no budget, cost 1). Every
//! change is validated first and written with its audit event in one transaction, like the
//! registry's own changes.
//!
//! What it is not: the per-call decision (that is `gate`) or the registry (names, base URLs
//! and scopes stay there).

use std::collections::BTreeMap;

use crate::store::{Tx, params};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use super::auth::CredentialPlacement;
use super::limits::{self, BudgetState};
use super::presets;
use crate::Mandate;
use crate::audit::{self, Decision, NewEvent, Target};
use crate::error::{Error, Result};
use crate::model::{Connection, ConnectionAction, TrustState};
use crate::registry::NewConnection;

/// Broker settings given when a connection is added.
#[derive(Debug, Clone, Default)]
pub struct BrokerSetup {
    pub auth: CredentialPlacement,
    /// The preset the connection was made from.
    pub preset: Option<String>,
    pub rate_per_minute: Option<u32>,
    pub daily_budget: Option<u64>,
    /// `(action, cost)`.
    pub costs: Vec<(String, u32)>,
    /// Actions that still pass after 90 % of the daily budget.
    pub essential: Vec<String>,
}

/// Changes to a connection; empty fields change nothing.
#[derive(Debug, Clone, Default)]
pub struct ConnectionEdit {
    pub auth: Option<CredentialPlacement>,
    /// `NAME=METHOD:PATH` strings.
    pub add_actions: Vec<String>,
    pub remove_actions: Vec<String>,
    /// `Some(None)` removes the limit.
    pub rate_per_minute: Option<Option<u32>>,
    /// `Some(None)` removes the budget.
    pub daily_budget: Option<Option<u64>>,
    pub costs: Vec<(String, u32)>,
    pub essential: Vec<String>,
    pub not_essential: Vec<String>,
    /// The lowest trust state that still gets tokens for this connection.
    pub trust_floor: Option<TrustState>,
}

/// An action with its broker policy.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ActionPolicy {
    pub name: String,
    pub method: String,
    pub path_pattern: String,
    pub cost: u32,
    pub essential: bool,
}

/// A connection's broker settings.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct BrokerConfig {
    pub connection: String,
    pub auth: CredentialPlacement,
    pub preset: Option<String>,
    pub rate_per_minute: Option<u32>,
    /// Cost units per agent per UTC day.
    pub daily_budget: Option<u64>,
    pub actions: Vec<ActionPolicy>,
}

impl BrokerConfig {
    pub fn action(&self, name: &str) -> Option<&ActionPolicy> {
        self.actions.iter().find(|a| a.name == name)
    }
}

/// One agent's use of one connection today.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct BudgetUsage {
    pub connection: String,
    /// The UTC day the numbers are for (`YYYY-MM-DD`).
    pub day: String,
    pub rate_per_minute: Option<u32>,
    pub daily_budget: Option<u64>,
    /// Cost units used today.
    pub used: u64,
    /// Calls forwarded today.
    pub calls: u64,
    /// Calls refused today.
    pub denied: u64,
    /// `unlimited`, `ok`, `essential_only` (90 % used) or `exhausted`.
    pub state: BudgetState,
}

/// The UTC day of `now`, the key of `broker_usage`.
pub fn day_of(now: DateTime<Utc>) -> String {
    now.format("%Y-%m-%d").to_string()
}

/// `(auth, preset, rate_per_minute, daily_budget)` of `broker_connections`.
type SettingsRow = (String, Option<String>, Option<i64>, Option<i64>);

fn opt_u32(v: Option<i64>) -> Option<u32> {
    v.and_then(|n| u32::try_from(n).ok())
}

/// Load a connection's settings inside any transaction.
pub(crate) fn load(conn: &Tx<'_>, c: &Connection) -> Result<BrokerConfig> {
    let row: Option<SettingsRow> = conn.query_opt(
        "SELECT auth, preset, rate_per_minute, daily_budget FROM broker_connections
             WHERE connection_id = ?1",
        params![c.id.as_str()],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    let (auth, preset, rate, budget) = row.unwrap_or(("bearer".into(), None, None, None));
    let policies: BTreeMap<String, (i64, bool)> = conn
        .query_map(
            "SELECT action, cost, essential FROM broker_actions WHERE connection_id = ?1",
            params![c.id.as_str()],
            |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))),
        )?
        .into_iter()
        .collect();
    let actions = c
        .actions
        .iter()
        .map(|a| {
            let (cost, essential) = policies.get(&a.name).copied().unwrap_or((1, false));
            ActionPolicy {
                name: a.name.clone(),
                method: a.method.clone(),
                path_pattern: a.path_pattern.clone(),
                cost: u32::try_from(cost).unwrap_or(u32::MAX),
                essential,
            }
        })
        .collect();
    Ok(BrokerConfig {
        connection: c.name.to_string(),
        auth: auth.parse().map_err(|_| {
            Error::Storage(format!(
                "the stored credential placement '{auth}' is unreadable"
            ))
        })?,
        preset,
        rate_per_minute: opt_u32(rate),
        daily_budget: budget.and_then(|b| u64::try_from(b).ok()),
        actions,
    })
}

fn check_limits(rate: Option<u32>, budget: Option<u64>) -> Result<()> {
    if rate == Some(0) {
        return Err(Error::invalid(
            "a rate limit of 0 calls per minute would refuse every call; give a positive number \
             or remove the limit",
        ));
    }
    if budget == Some(0) || budget.is_some_and(|b| b > i64::MAX as u64) {
        return Err(Error::invalid(
            "the daily budget must be a positive number of cost units",
        ));
    }
    Ok(())
}

fn check_action_names(actions: &[ConnectionAction], names: &[&str]) -> Result<()> {
    for n in names {
        if !actions.iter().any(|a| a.name == *n) {
            let offered: Vec<&str> = actions.iter().map(|a| a.name.as_str()).collect();
            return Err(Error::invalid(format!(
                "the connection offers no action '{n}'; it offers: {}",
                offered.join(", ")
            )));
        }
    }
    Ok(())
}

/// Write the settings row and action policies.
pub(crate) fn write_settings(
    tx: &Tx<'_>,
    connection_id: &str,
    auth: &CredentialPlacement,
    preset: Option<&str>,
    rate: Option<u32>,
    budget: Option<u64>,
) -> Result<()> {
    tx.execute(
        "INSERT INTO broker_connections (connection_id, auth, preset, rate_per_minute, daily_budget)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (connection_id) DO UPDATE SET auth = ?2, preset = ?3, rate_per_minute = ?4,
             daily_budget = ?5",
        params![
            connection_id,
            auth.to_string(),
            preset,
            rate,
            budget.map(|b| b as i64)
        ],
    )?;
    Ok(())
}

pub(crate) fn write_policy(
    tx: &Tx<'_>,
    connection_id: &str,
    action: &str,
    cost: Option<u32>,
    essential: Option<bool>,
) -> Result<()> {
    tx.execute(
        "INSERT INTO broker_actions (connection_id, action, cost, essential)
         VALUES (?1, ?2, coalesce(?3, 1), coalesce(?4, 0))
         ON CONFLICT (connection_id, action) DO UPDATE SET
             cost = coalesce(?3, broker_actions.cost),
             essential = coalesce(?4, broker_actions.essential)",
        params![connection_id, action, cost, essential],
    )?;
    Ok(())
}

impl Mandate {
    /// Register a connection with broker settings, in one transaction with its audit events.
    pub fn add_brokered_connection(
        &self,
        new: NewConnection,
        setup: BrokerSetup,
    ) -> Result<Connection> {
        check_limits(setup.rate_per_minute, setup.daily_budget)?;
        let parsed: Vec<ConnectionAction> = new
            .actions
            .iter()
            .map(|a| ConnectionAction::parse(a))
            .collect::<Result<_>>()?;
        let named: Vec<&str> = setup
            .costs
            .iter()
            .map(|(a, _)| a.as_str())
            .chain(setup.essential.iter().map(String::as_str))
            .collect();
        check_action_names(&parsed, &named)?;
        if let Some(p) = &setup.preset
            && presets::preset(p).is_none()
        {
            return Err(Error::invalid(format!(
                "there is no preset '{p}'; presets: {}",
                presets::names().join(", ")
            )));
        }
        let actor = self.actor()?;
        self.add_connection_with(new, move |tx, id, name, now| {
            write_settings(
                tx,
                id,
                &setup.auth,
                setup.preset.as_deref(),
                setup.rate_per_minute,
                setup.daily_budget,
            )?;
            for (a, cost) in &setup.costs {
                write_policy(tx, id, a, Some(*cost), None)?;
            }
            for a in &setup.essential {
                write_policy(tx, id, a, None, Some(true))?;
            }
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "connection.broker_configured", Decision::Allow)
                    .target(Target::new("connection", id, name))
                    .details(json!({
                        "auth": setup.auth.to_string(),
                        "preset": setup.preset,
                        "rate_per_minute": setup.rate_per_minute,
                        "daily_budget": setup.daily_budget,
                        "costs": setup.costs.iter().map(|(a, c)| json!({"action": a, "cost": c})).collect::<Vec<_>>(),
                        "essential": setup.essential,
                    })),
            )?;
            Ok(())
        })
    }

    /// A connection's broker settings (defaults when none were set).
    pub fn broker_config(&self, connection: &str) -> Result<BrokerConfig> {
        let c = self.get_connection(connection)?;
        let mut guard = self.lock()?;
        let conn = guard.tx()?;
        load(&conn, &c)
    }

    /// Change a connection's actions, credential placement, limits, costs or essential
    /// actions. Removing an action that an agent holds a scope on is refused (name the
    /// agents); everything is checked before anything is written.
    pub fn edit_connection(&self, name: &str, edit: ConnectionEdit) -> Result<BrokerConfig> {
        let c = self.get_connection(name)?;
        let broker_only = edit.auth.is_some()
            || !edit.add_actions.is_empty()
            || !edit.remove_actions.is_empty()
            || edit.rate_per_minute.is_some()
            || edit.daily_budget.is_some()
            || !edit.costs.is_empty()
            || !edit.essential.is_empty()
            || !edit.not_essential.is_empty();
        if c.kind == crate::model::ConnectionKind::Database && broker_only {
            return Err(Error::invalid(format!(
                "'{}' is a database connection: its one action is `connect` and the broker never \
                 calls it, so actions, credential placement, limits and costs do not apply; only \
                 its trust floor can change",
                c.name
            )));
        }
        let mut actions = c.actions.clone();
        let mut added = Vec::new();
        for raw in &edit.add_actions {
            let a = ConnectionAction::parse(raw)?;
            if actions.iter().any(|x| x.name == a.name) {
                return Err(Error::invalid(format!(
                    "the connection '{}' already has an action '{}'; remove it first to change it",
                    c.name, a.name
                )));
            }
            actions.push(a.clone());
            added.push(a);
        }
        let removed: Vec<&str> = edit.remove_actions.iter().map(String::as_str).collect();
        check_action_names(&c.actions, &removed)?;
        actions.retain(|a| !removed.contains(&a.name.as_str()));
        let named: Vec<&str> = edit
            .costs
            .iter()
            .map(|(a, _)| a.as_str())
            .chain(edit.essential.iter().map(String::as_str))
            .chain(edit.not_essential.iter().map(String::as_str))
            .collect();
        check_action_names(&actions, &named)?;
        let actor = self.actor()?;
        let connection_id = c.id.to_string();
        let cname = c.name.to_string();
        self.write(|tx, now| {
            let before = load(tx, &c)?;
            for r in &removed {
                let scope = format!("{cname}:{r}");
                let holders: Vec<String> = tx.query_map("SELECT a.name FROM agent_scopes s JOIN agents a ON a.id = s.agent_id
                     WHERE s.scope = ?1 ORDER BY a.name", params![&scope], |r| r.get(0))?;
                if !holders.is_empty() {
                    return Err(Error::Conflict(format!(
                        "{} hold the scope {scope}; remove it from them first (`mandate agent \
                         edit NAME --remove-scope {scope}`)",
                        holders.join(", ")
                    )));
                }
                tx.execute(
                    "DELETE FROM connection_actions WHERE connection_id = ?1 AND name = ?2",
                    params![connection_id, r],
                )?;
            }
            for a in &added {
                tx.execute(
                    "INSERT INTO connection_actions (connection_id, name, method, path_pattern)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![connection_id, a.name, a.method, a.path_pattern],
                )?;
            }
            let rate = edit.rate_per_minute.unwrap_or(before.rate_per_minute);
            let budget = edit.daily_budget.unwrap_or(before.daily_budget);
            check_limits(rate, budget)?;
            let auth = edit.auth.clone().unwrap_or(before.auth.clone());
            write_settings(
                tx,
                &connection_id,
                &auth,
                before.preset.as_deref(),
                rate,
                budget,
            )?;
            for (a, cost) in &edit.costs {
                write_policy(tx, &connection_id, a, Some(*cost), None)?;
            }
            for a in &edit.essential {
                write_policy(tx, &connection_id, a, None, Some(true))?;
            }
            for a in &edit.not_essential {
                write_policy(tx, &connection_id, a, None, Some(false))?;
            }
            let floor = edit.trust_floor.unwrap_or(c.trust_floor);
            tx.execute(
                "UPDATE connections SET updated_at = ?2, trust_floor = ?3 WHERE id = ?1",
                params![connection_id, audit::format_time(now), floor.as_str()],
            )?;
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "connection.edited", Decision::Allow)
                    .target(Target::new("connection", &connection_id, &cname))
                    .details(json!({
                        "added_actions": added.iter().map(|a| format!("{}={}:{}", a.name, a.method, a.path_pattern)).collect::<Vec<_>>(),
                        "removed_actions": removed,
                        "auth": auth.to_string(),
                        "rate_per_minute": rate,
                        "daily_budget": budget,
                        "costs": edit.costs.iter().map(|(a, c)| json!({"action": a, "cost": c})).collect::<Vec<_>>(),
                        "essential": edit.essential,
                        "not_essential": edit.not_essential,
                        "trust_floor": floor.as_str(),
                        "trust_floor_before": c.trust_floor.as_str(),
                    })),
            )?;
            Ok(())
        })?;
        self.broker_config(&cname)
    }

    /// An agent's budget use today on every connection it holds scopes on (for `mandate
    /// agent show` and the app).
    pub fn broker_usage(&self, agent: &str) -> Result<Vec<BudgetUsage>> {
        let a = self.get_agent(agent)?;
        let mut names: Vec<&str> = a.scopes.iter().map(|s| s.connection()).collect();
        names.dedup();
        let day = day_of(self.now());
        let mut out = Vec::new();
        for n in names {
            let c = self.get_connection(n)?;
            let mut guard = self.lock()?;
            let conn = guard.tx()?;
            let cfg = load(&conn, &c)?;
            let (used, calls, denied) = usage_row(&conn, a.id.as_str(), c.id.as_str(), &day)?;
            out.push(BudgetUsage {
                connection: c.name.to_string(),
                day: day.clone(),
                rate_per_minute: cfg.rate_per_minute,
                daily_budget: cfg.daily_budget,
                used,
                calls,
                denied,
                state: limits::budget_state(cfg.daily_budget, used),
            });
        }
        Ok(out)
    }
}

/// `(units, calls, denied)` of an agent on a connection on `day`.
pub(crate) fn usage_row(
    conn: &Tx<'_>,
    agent_id: &str,
    connection_id: &str,
    day: &str,
) -> Result<(u64, u64, u64)> {
    let row: Option<(i64, i64, i64)> = conn.query_opt(
        "SELECT units, calls, denied FROM broker_usage
             WHERE agent_id = ?1 AND connection_id = ?2 AND day = ?3",
        params![agent_id, connection_id, day],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let (u, c, d) = row.unwrap_or((0, 0, 0));
    Ok((u.max(0) as u64, c.max(0) as u64, d.max(0) as u64))
}
