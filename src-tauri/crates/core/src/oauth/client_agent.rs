//! The narrow view of an agent that client authentication and issuance read on every token,
//! introspection and revocation request: its identity, status, DPoP and lifetime settings,
//! grants, keys (raw public bytes, decoded only for the key an assertion names) and its
//! effective trust state.
//!
//! Why not the full [`crate::model::Agent`]: that view also finds the agent's last audit event,
//! computes every key's fingerprint, decompresses every key and writes the explanation of each
//! trust signal, none of which a token needs. The trust *state* is still computed on every
//! request from the committed facts (with [`crate::trust::state`], the same rules as the
//! explained evaluation, checked equal by a test), so it is never stale: a change made in the
//! app or CLI applies to the next request after it commits.
//!
//! Statements are prepared once per read connection (`prepare_cached`). What is read is split
//! in two: the registry's facts ([`AgentFacts`], which `registry_memo` may reuse while the
//! registry's generation is unchanged) and the trust state those facts give at the request's
//! time ([`AgentFacts::at`], worked out anew on every request).

use crate::store::{Tx, params};
use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;

use crate::error::{Error, Result};
use crate::lineage::{self, Ancestor};
use crate::model::{AgentId, AgentName, AgentStatus, Scope, TrustState};
use crate::registry::parse_time;
use crate::trust;

/// One registered public key.
#[derive(Debug, Clone)]
pub(crate) struct ClientKey {
    pub kid: String,
    pub public: [u8; 32],
    pub expires_at: Option<DateTime<Utc>>,
}

impl ClientKey {
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|t| now < t)
    }

    /// The key as a curve point (a decompression: done only for the key in use, and only once
    /// per distinct key, see [`decompressed`]).
    pub fn verifying_key(&self) -> Result<VerifyingKey> {
        decompressed(&self.public)
    }
}

/// Most decompressed keys kept; past that the memo starts over.
const MEMO_KEYS: usize = 4096;

/// `VerifyingKey::from_bytes`, remembered by the key's exact 32 bytes. Decompressing a point
/// (a field square root) was about 4 % of the endpoint's CPU, repeated on every request for the
/// same few keys. This is a memo of a pure function of its input, not a cache of state: which
/// key an agent has, and whether it is active, is still read from the database on every
/// request, so a removed or expired key stops working at once.
fn decompressed(public: &[u8; 32]) -> Result<VerifyingKey> {
    use std::collections::HashMap;
    use std::sync::{OnceLock, RwLock};
    static MEMO: OnceLock<RwLock<HashMap<[u8; 32], VerifyingKey>>> = OnceLock::new();
    let memo = MEMO.get_or_init(Default::default);
    if let Some(k) = memo.read().ok().and_then(|m| m.get(public).copied()) {
        return Ok(k);
    }
    let k = VerifyingKey::from_bytes(public)
        .map_err(|_| Error::Storage("a stored public key is not a valid point".into()))?;
    if let Ok(mut m) = memo.write() {
        if m.len() >= MEMO_KEYS {
            m.clear();
        }
        m.insert(*public, k);
    }
    Ok(k)
}

/// What the endpoint knows about an authenticated (or claimed) client.
#[derive(Debug, Clone)]
pub(crate) struct ClientAgent {
    pub id: AgentId,
    pub name: AgentName,
    pub parent: Option<AgentName>,
    pub status: AgentStatus,
    pub dpop_required: bool,
    pub max_token_ttl_secs: Option<u32>,
    /// The scopes it may get: its own grants that every agent above it holds too.
    pub scopes: Vec<Scope>,
    /// Its own grants that an agent above it lacks, with that agent (they are not in `scopes`).
    pub capped: Vec<(Scope, AgentName)>,
    /// The agents above it, its parent first.
    pub parents: Vec<String>,
    /// The nearest agent above it that is suspended or revoked: it then gets no token.
    pub held_by: Option<(AgentName, AgentStatus)>,
    pub keys: Vec<ClientKey>,
    /// The effective trust state now (override included).
    pub trust: TrustState,
    /// The trust score now (0-100).
    pub score: i32,
    /// The organisation's minimum score (0: none).
    pub organisation_floor: i32,
}

/// What the registry says about one agent: everything [`ClientAgent`] is made of except the
/// trust state, which depends on the time and is worked out by [`AgentFacts::at`] on every
/// request. Kept between requests only by [`super::registry_memo`], and only while the
/// registry is unchanged.
#[derive(Debug, Clone)]
pub(crate) struct AgentFacts {
    id: AgentId,
    name: AgentName,
    parent: Option<AgentName>,
    status: AgentStatus,
    has_owner: bool,
    override_state: Option<TrustState>,
    dpop_required: bool,
    max_token_ttl_secs: Option<u32>,
    created_at: DateTime<Utc>,
    scopes: Vec<Scope>,
    /// The agents above it, parent first, each with its own grants.
    ancestors: Vec<(Ancestor, Vec<Scope>)>,
    keys: Vec<ClientKey>,
    /// `(created_at, expires_at)` of each key, for the trust rules.
    key_times: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>,
    /// The behaviour points the trust refresher last stored.
    behaviour_points: i32,
    /// `(points, expires_at)` of each attestation that counts for the current configuration.
    attestations: Vec<(i32, DateTime<Utc>)>,
    /// The configuration changed since a member last reviewed it.
    drifted: bool,
    settings: trust::TrustSettings,
}

impl AgentFacts {
    /// The agent as of `now`: its facts and the trust state they give at that time.
    pub fn at(&self, now: DateTime<Utc>) -> ClientAgent {
        let (trust, score) = trust::state_and_score(&trust::StateInputs {
            status: self.status,
            has_owner: self.has_owner,
            key_times: &self.key_times,
            scope_count: self.scopes.len(),
            created_at: self.created_at,
            now,
            override_state: self.override_state,
            behaviour_points: self.behaviour_points,
            attestations: &self.attestations,
            drifted: self.drifted,
            thresholds: self.settings.thresholds,
        });
        // A sub-agent never exceeds its parent: what an agent above lacks is cut here too,
        // whatever the registry holds (defence in depth; see `lineage`).
        let mut scopes = Vec::with_capacity(self.scopes.len());
        let mut capped = Vec::new();
        for s in &self.scopes {
            match self.ancestors.iter().find(|(_, held)| !held.contains(s)) {
                Some((a, _)) => capped.push((s.clone(), a.name.clone())),
                None => scopes.push(s.clone()),
            }
        }
        let chain: Vec<Ancestor> = self.ancestors.iter().map(|(a, _)| a.clone()).collect();
        ClientAgent {
            id: self.id.clone(),
            name: self.name.clone(),
            parent: self.parent.clone(),
            status: self.status,
            dpop_required: self.dpop_required,
            max_token_ttl_secs: self.max_token_ttl_secs,
            scopes,
            capped,
            parents: lineage::names(&chain),
            held_by: lineage::holding_parent(&chain).map(|a| (a.name.clone(), a.status)),
            keys: self.keys.clone(),
            trust,
            score,
            organisation_floor: self.settings.organisation_floor,
        }
    }
}

/// The registry's facts about the agent named exactly `name`, in `conn`'s snapshot.
pub(crate) fn facts(conn: &Tx<'_>, name: &str) -> Result<Option<AgentFacts>> {
    type Row = (
        String,
        String,
        Option<String>,
        String,
        bool,
        Option<String>,
        bool,
        Option<u32>,
        String,
        u32,
        u32,
        Option<i32>,
    );
    let row: Option<Row> = conn.query_opt(
        "SELECT a.id, a.name, p.name, a.status, m.id IS NOT NULL, a.trust_override,
                a.dpop_required, a.max_token_ttl_secs, a.created_at, a.config_version,
                a.reviewed_config_version, b.points
         FROM agents a
         LEFT JOIN trust_behaviour b ON b.agent_id = a.id
         LEFT JOIN members m ON m.id = a.owner_id
         LEFT JOIN agents p ON p.id = a.parent_id
         WHERE a.name = ?1",
        params![name],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
                r.get(10)?,
                r.get(11)?,
            ))
        },
    )?;
    let Some((
        id,
        name,
        parent,
        status,
        has_owner,
        t_override,
        dpop_required,
        max_ttl,
        created,
        version,
        reviewed,
        behaviour_points,
    )) = row
    else {
        return Ok(None);
    };
    let attestations = trust::records::counted(conn, &id, version)?
        .into_iter()
        .map(|a| (a.points, a.expires_at))
        .collect();
    let settings = trust::records::settings(conn)?;
    let grants = |agent_id: &str| -> Result<Vec<Scope>> {
        let mut scopes = conn.query_map(
            "SELECT scope FROM agent_scopes WHERE agent_id = ?1",
            params![agent_id],
            |r| Ok(Scope::from_db(r.get::<String>(0)?)),
        )?;
        scopes.sort();
        Ok(scopes)
    };
    let scopes = grants(&id)?;
    let mut ancestors = Vec::new();
    if parent.is_some() {
        for a in lineage::ancestors(conn, &id)? {
            let held = grants(a.id.as_str())?;
            ancestors.push((a, held));
        }
    }
    let raw = conn.query_map(
        "SELECT kid, public_key, created_at, expires_at FROM agent_keys WHERE agent_id = ?1",
        params![&id],
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<Vec<u8>>(1)?,
                r.get::<String>(2)?,
                r.get::<Option<String>>(3)?,
            ))
        },
    )?;
    let mut keys = Vec::with_capacity(raw.len());
    let mut key_times = Vec::with_capacity(raw.len());
    for (kid, pk, created, expires) in raw {
        let public: [u8; 32] = pk
            .as_slice()
            .try_into()
            .map_err(|_| Error::Storage("a stored public key has the wrong length".into()))?;
        let expires_at = expires.as_deref().map(parse_time).transpose()?;
        key_times.push((parse_time(&created)?, expires_at));
        keys.push(ClientKey {
            kid,
            public,
            expires_at,
        });
    }
    Ok(Some(AgentFacts {
        id: AgentId(id),
        name: AgentName::from_db(name),
        parent: parent.map(AgentName::from_db),
        status: AgentStatus::from_db(&status)?,
        has_owner,
        override_state: t_override.map(|s| s.parse()).transpose()?,
        dpop_required,
        max_token_ttl_secs: max_ttl,
        created_at: parse_time(&created)?,
        scopes,
        ancestors,
        keys,
        key_times,
        behaviour_points: behaviour_points.unwrap_or(0),
        attestations,
        drifted: version > reviewed,
        settings,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::decompressed;

    #[test]
    fn the_memo_answers_exactly_what_decompression_does() {
        let key = crate::keys::generate().verifying_key();
        let first = decompressed(key.as_bytes()).unwrap();
        let again = decompressed(key.as_bytes()).unwrap();
        assert_eq!(first, key);
        assert_eq!(again, key);
        // Bytes that are no curve point fail every time (a failure is never remembered).
        let bad = (0u8..=255)
            .map(|b| {
                let mut y = [0u8; 32];
                y[0] = b;
                y
            })
            .find(|y| ed25519_dalek::VerifyingKey::from_bytes(y).is_err())
            .expect("about half of all encodings are not points");
        assert!(decompressed(&bad).is_err());
        assert!(decompressed(&bad).is_err());
    }
}
