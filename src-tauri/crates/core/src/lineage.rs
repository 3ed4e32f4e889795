//! Sub-agents and their parents: the chain up from an agent, the agents below it, and the
//! rule that a sub-agent never exceeds its parent.
//!
//! The rule holds twice, as defence in depth. In the registry: a sub-agent is never granted a
//! scope its parent lacks, and a scope taken from a parent is taken from every agent below it
//! in the same transaction (each audited). At each request: a token carries only the scopes
//! that the agent and every agent above it hold, and an agent with a suspended or revoked
//! agent above it gets no token, and its tokens stop working at introspection and at the
//! broker, with a reason that names that parent.
//!
//! What it is not: it changes nothing itself (the registry does), and it does not suspend or
//! revoke children when a parent is: a child is held back while its parent is, and works
//! again when the parent is resumed.

use crate::error::Result;
use crate::model::{AgentId, AgentName, AgentStatus};
use crate::store::{Tx, params};

/// Longest parent chain followed; registration refuses cycles, this bounds damaged data.
pub(crate) const MAX_DEPTH: u32 = 16;

/// One agent above another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ancestor {
    pub id: AgentId,
    pub name: AgentName,
    pub status: AgentStatus,
}

/// The agents above `agent_id`, its parent first.
pub(crate) fn ancestors(conn: &Tx<'_>, agent_id: &str) -> Result<Vec<Ancestor>> {
    let rows = conn.query_map(
        "WITH RECURSIVE up(id, depth) AS (
             SELECT parent_id, 1 FROM agents WHERE id = ?1 AND parent_id IS NOT NULL
             UNION ALL
             SELECT a.parent_id, up.depth + 1 FROM agents a JOIN up ON a.id = up.id
             WHERE a.parent_id IS NOT NULL AND up.depth < ?2)
         SELECT a.id, a.name, a.status FROM up JOIN agents a ON a.id = up.id ORDER BY up.depth",
        params![agent_id, MAX_DEPTH],
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<String>(1)?,
                r.get::<String>(2)?,
            ))
        },
    )?;
    let mut out = Vec::new();
    for (id, name, status) in rows {
        out.push(Ancestor {
            id: AgentId(id),
            name: AgentName::from_db(name),
            status: AgentStatus::from_db(&status)?,
        });
    }
    Ok(out)
}

/// `agent_id` itself, then the agents above it: the chain a new child of it would have.
pub(crate) fn ancestors_from(conn: &Tx<'_>, agent_id: &AgentId) -> Result<Vec<Ancestor>> {
    let (name, status): (String, String) = conn.query_row(
        "SELECT name, status FROM agents WHERE id = ?1",
        params![agent_id.as_str()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut out = vec![Ancestor {
        id: agent_id.clone(),
        name: AgentName::from_db(name),
        status: AgentStatus::from_db(&status)?,
    }];
    out.extend(ancestors(conn, agent_id.as_str())?);
    out.truncate(MAX_DEPTH as usize);
    Ok(out)
}

/// The agents below `agent_id` (children, their children...), nearest first.
pub(crate) fn descendants(conn: &Tx<'_>, agent_id: &str) -> Result<Vec<Ancestor>> {
    let rows = conn.query_map(
        "WITH RECURSIVE down(id, depth) AS (
             SELECT id, 1 FROM agents WHERE parent_id = ?1
             UNION ALL
             SELECT a.id, down.depth + 1 FROM agents a JOIN down ON a.parent_id = down.id
             WHERE down.depth < ?2)
         SELECT a.id, a.name, a.status FROM down JOIN agents a ON a.id = down.id
         ORDER BY down.depth, a.name",
        params![agent_id, MAX_DEPTH],
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<String>(1)?,
                r.get::<String>(2)?,
            ))
        },
    )?;
    let mut out: Vec<Ancestor> = Vec::new();
    for (id, name, status) in rows {
        if out.iter().any(|a| a.id.as_str() == id) {
            continue;
        }
        out.push(Ancestor {
            id: AgentId(id),
            name: AgentName::from_db(name),
            status: AgentStatus::from_db(&status)?,
        });
    }
    Ok(out)
}

/// The nearest agent above that is not active, if any: while it is suspended or revoked, the
/// agents below it get nothing.
pub(crate) fn holding_parent(chain: &[Ancestor]) -> Option<&Ancestor> {
    chain.iter().find(|a| a.status != AgentStatus::Active)
}

/// Why `child` gets nothing while `parent` is not active, as a sentence that says what to do.
pub(crate) fn held_back(child: &str, parent: &str, status: AgentStatus) -> String {
    match status {
        AgentStatus::Revoked => format!(
            "its parent agent '{parent}' is revoked, so the sub-agent '{child}' gets nothing; \
             give '{child}' another parent (`mandate agent edit {child} --parent NAME` or \
             `--no-parent`) or register a new agent"
        ),
        _ => format!(
            "its parent agent '{parent}' is {status}, so the sub-agent '{child}' gets nothing \
             until '{parent}' is resumed"
        ),
    }
}

/// An agent in a chain that is not active: `depth` 0 is the agent itself, 1 its parent...
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub depth: u32,
    pub name: String,
    pub status: AgentStatus,
}

/// The nearest agent, from `agent_id` itself upwards, that is not active; `None` when the agent
/// and every agent above it are active. One query (the agent's row, then its parents').
pub(crate) fn first_inactive_in_chain(conn: &Tx<'_>, agent_id: &str) -> Result<Option<Held>> {
    let row: Option<(u32, String, String)> = conn.query_opt(
        "WITH RECURSIVE up(id, parent_id, name, status, depth) AS (
                 SELECT id, parent_id, name, status, 0 FROM agents WHERE id = ?1
                 UNION ALL
                 SELECT a.id, a.parent_id, a.name, a.status, up.depth + 1
                 FROM agents a JOIN up ON a.id = up.parent_id WHERE up.depth < ?2)
             SELECT depth, name, status FROM up WHERE status <> 'active' ORDER BY depth LIMIT 1",
        params![agent_id, MAX_DEPTH],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    row.map(|(depth, name, status)| {
        Ok(Held {
            depth,
            name,
            status: AgentStatus::from_db(&status)?,
        })
    })
    .transpose()
}

/// The names of a chain, parent first (what tokens and audit events carry).
pub(crate) fn names(chain: &[Ancestor]) -> Vec<String> {
    chain.iter().map(|a| a.name.to_string()).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    use crate::store::testing::{TestStore, each_store};

    fn db(s: &TestStore) -> crate::store::Conn {
        let mut c = s.conn();
        c.write(|tx| {
            tx.execute_batch(
                "INSERT INTO members (id, name, created_at) VALUES ('m', 'ann', 't');
                 INSERT INTO agents (id, name, purpose, owner_id, parent_id, status, created_at, updated_at)
                 VALUES ('a', 'top', 'p', 'm', NULL, 'active', 't', 't'),
                        ('b', 'mid', 'p', 'm', 'a', 'suspended', 't', 't'),
                        ('c', 'low', 'p', 'm', 'b', 'active', 't', 't'),
                        ('d', 'other', 'p', 'm', 'a', 'active', 't', 't');",
            )
        })
        .unwrap();
        c
    }

    #[test]
    fn the_chain_up_starts_with_the_parent_and_finds_the_first_held_one() {
        each_store(|s| {
            let mut c = db(s);
            c.snapshot(|tx| {
                let up = ancestors(tx, "c").unwrap();
                assert_eq!(names(&up), ["mid", "top"]);
                assert_eq!(holding_parent(&up).unwrap().name.as_str(), "mid");
                assert!(ancestors(tx, "a").unwrap().is_empty());
                assert!(holding_parent(&ancestors(tx, "d").unwrap()).is_none());
                let held = first_inactive_in_chain(tx, "c").unwrap().unwrap();
                assert_eq!((held.depth, held.name.as_str()), (1, "mid"));
                assert!(first_inactive_in_chain(tx, "d").unwrap().is_none());
                Ok(())
            })
            .unwrap();
        });
    }

    #[test]
    fn the_agents_below_come_nearest_first_and_a_cycle_ends() {
        each_store(|s| {
            let mut c = db(s);
            c.write(|tx| {
                let down: Vec<String> = descendants(tx, "a")
                    .unwrap()
                    .into_iter()
                    .map(|a| a.name.to_string())
                    .collect();
                assert_eq!(down, ["mid", "other", "low"]);
                // Damaged data with a cycle still ends.
                tx.execute(
                    "UPDATE agents SET parent_id = 'c' WHERE id = 'a'",
                    params![],
                )
                .unwrap();
                assert!(ancestors(tx, "c").unwrap().len() <= MAX_DEPTH as usize);
                assert_eq!(descendants(tx, "a").unwrap().len(), 4);
                Ok(())
            })
            .unwrap();
        });
    }
}
