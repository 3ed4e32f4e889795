//! The registry: team members, connections, agents, their scopes and keys, and the issuer key.
//!
//! Every mutation validates all of its input first, then writes the change and its audit
//! event in one `BEGIN IMMEDIATE` transaction. Keychain writes happen before the transaction
//! and are undone if it fails, so a failure leaves nothing half-written. Secrets go to the
//! keychain only; the database records that a secret exists, never its value.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::store::{Tx, params};
use chrono::{DateTime, Duration, Utc};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde_json::json;

use crate::Mandate;
use crate::audit::{self, Decision, NewEvent, Target};
use crate::error::{Error, Result};
use crate::keys::{self, PrivateKeyFormat};
use crate::lineage;
use crate::model::*;
use crate::secret::{KeychainError, SecretRef, Sensitive};
use crate::trust::{self, TrustInputs, TrustOverride};
use crate::vault::Ed25519Signer;

/// The longest overlap allowed when rotating a key.
pub const MAX_ROTATION_OVERLAP: Duration = Duration::days(30);

/// How an agent gets its key.
#[derive(Debug, Clone)]
pub enum KeyChoice {
    /// No key yet (the agent stays PENDING until it has one).
    None,
    /// Generate a key pair here and keep the private key in the OS keychain.
    GenerateInKeychain,
    /// Generate a key pair here and write the private key once to a new file (mode 0600);
    /// Mandate keeps no copy.
    GenerateToFile {
        path: PathBuf,
        format: PrivateKeyFormat,
    },
    /// Register a public key the agent made (JWK, PEM or OpenSSH text).
    Register { public_key: String },
}

/// A new agent.
#[derive(Debug, Clone)]
pub struct NewAgent {
    pub name: String,
    pub purpose: String,
    pub owner: String,
    pub parent: Option<String>,
    pub scopes: Vec<String>,
    pub key: KeyChoice,
}

/// Changes to an agent; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AgentEdit {
    pub purpose: Option<String>,
    pub owner: Option<String>,
    /// `Some(None)` removes the parent.
    pub parent: Option<Option<String>>,
    pub add_scopes: Vec<String>,
    pub remove_scopes: Vec<String>,
    pub dpop_required: Option<bool>,
    /// `Some(None)` returns to the global default.
    pub max_token_ttl_secs: Option<Option<u32>>,
}

/// A new connection.
#[derive(Debug, Clone)]
pub struct NewConnection {
    pub name: String,
    pub base_url: String,
    /// `NAME=METHOD:PATH` strings.
    pub actions: Vec<String>,
    pub trust_floor: Option<TrustState>,
}

/// The issuer key as the endpoint needs it: its id, its public half, and what signs with its
/// private half (in memory from the keychain, or inside a PKCS#11 token).
#[derive(Debug, Clone)]
pub struct IssuerKey {
    pub kid: String,
    pub public: VerifyingKey,
    pub signer: Arc<dyn Ed25519Signer>,
}

impl IssuerKey {
    /// Sign `msg` with the issuer key; a vault that cannot be reached fails, signing nothing.
    pub fn sign(&self, msg: &[u8]) -> Result<ed25519_dalek::Signature> {
        Ok(self.signer.try_sign(msg)?)
    }
}

/// Longest token lifetime anyone may configure: 24 hours.
pub const MAX_TTL_SECS: u32 = 24 * 3600;

pub(crate) fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::Storage(format!("a stored time is unreadable ({e})")))
}

pub(crate) fn ts(t: DateTime<Utc>) -> String {
    audit::format_time(t)
}

fn validate_purpose(p: &str) -> Result<String> {
    let p = p.trim();
    if p.is_empty() {
        return Err(Error::invalid(
            "the purpose is empty: say in a few words what the agent does (for example \
             'monthly billing report')",
        ));
    }
    if p.chars().count() > 500 {
        return Err(Error::invalid(
            "the purpose is longer than 500 characters; shorten it",
        ));
    }
    Ok(p.to_string())
}

fn validate_base_url(raw: &str) -> Result<String> {
    let raw = raw.trim().trim_end_matches('/');
    let u = url::Url::parse(raw).map_err(|e| {
        Error::invalid(format!(
            "'{raw}' is not a URL ({e}); give the API's base URL, for example \
             https://api.github.com"
        ))
    })?;
    if !matches!(u.scheme(), "https" | "http") || u.host_str().is_none() {
        return Err(Error::invalid(format!(
            "'{raw}' must be an http(s) URL with a host, for example https://api.github.com"
        )));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(Error::invalid(
            "the base URL contains a user name or password; remove it and store the credential \
             with `mandate connection set-secret`",
        ));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(Error::invalid(
            "the base URL must not have a query or fragment",
        ));
    }
    Ok(raw.to_string())
}

/// Write a private key file that must not exist yet, readable by the owner only.
fn write_new_private_file(path: &Path, contents: &Sensitive<String>) -> Result<()> {
    use std::io::Write;
    let io = |e: std::io::Error, action: &'static str| Error::Io {
        action,
        path: path.to_path_buf(),
        reason: if e.kind() == std::io::ErrorKind::AlreadyExists {
            "it already exists; Mandate never overwrites a key file, choose another path".into()
        } else {
            e.to_string()
        },
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| io(e, "could not create the key file"))?;
    f.write_all(contents.expose().as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| {
            let _ = std::fs::remove_file(path);
            io(e, "could not write the key file")
        })
}

/// A key prepared for registration, with what to undo if the transaction fails.
struct PreparedKey {
    public: VerifyingKey,
    origin: KeyOrigin,
    keychain_ref: Option<SecretRef>,
    file: Option<PathBuf>,
}

impl Mandate {
    // ----- lookups --------------------------------------------------------------------------

    pub(crate) fn agent_id_by_name(&self, name: &str) -> Result<AgentId> {
        let mut guard = self.lock()?;
        let conn = guard.tx()?;
        agent_id_tx(&conn, name)
    }

    // ----- issuer key -----------------------------------------------------------------------

    /// The vault name of issuer key `kid`: `<install id>/issuer-key/<kid>`, the keychain
    /// account the key has always had.
    pub(crate) fn issuer_key_name(&self, kid: &str) -> String {
        self.secret_ref(SecretRef::issuer_key(kid)).account
    }

    /// Issuer key `kid` from the vault.
    pub(crate) fn load_issuer_key(&self, kid: &str) -> Result<IssuerKey> {
        match self.issuer_keys.find(&self.issuer_key_name(kid))? {
            Some(signer) => {
                let public = signer.public_key();
                if keys::thumbprint(&public) != kid {
                    return Err(Error::Conflict(format!(
                        "the issuer key stored as {kid} in {} has another public key; the vault \
                         was changed behind Mandate's back. Restore it, or rotate the issuer key",
                        self.issuer_keys.describe()
                    )));
                }
                Ok(IssuerKey {
                    kid: kid.to_string(),
                    public,
                    signer,
                })
            }
            None => Err(Error::Keychain(KeychainError::Missing(format!(
                "the issuer signing key {kid} is missing from {}; it may have been deleted. \
                 Restore it, or start over with a new MANDATE_DATA_DIR",
                self.issuer_keys.describe()
            )))),
        }
    }

    /// Make a new issuer key in the vault; returns it. The caller records it (or destroys it
    /// with [`Mandate::destroy_issuer_key`] if its transaction fails).
    pub(crate) fn generate_issuer_key(&self) -> Result<IssuerKey> {
        let signer = self
            .issuer_keys
            .generate(&|pk| self.issuer_key_name(&keys::thumbprint(pk)))?;
        let public = signer.public_key();
        Ok(IssuerKey {
            kid: keys::thumbprint(&public),
            public,
            signer,
        })
    }

    pub(crate) fn destroy_issuer_key(&self, kid: &str) -> Result<()> {
        Ok(self.issuer_keys.destroy(&self.issuer_key_name(kid))?)
    }

    /// The issuer's Ed25519 signing key, created in the vault (the keychain, or the team
    /// server's PKCS#11 token) on first use.
    pub fn issuer_key(&self) -> Result<IssuerKey> {
        let kid: Option<String> = {
            let mut guard = self.lock()?;
            let conn = guard.tx()?;
            conn.query_opt(
                "SELECT value FROM meta WHERE key = 'issuer_kid'",
                params![],
                |r| r.get(0),
            )?
        };
        if let Some(kid) = kid {
            return self.load_issuer_key(&kid);
        }
        // Made at the endpoint's first start: by the person starting it when one is chosen,
        // else (the desktop app opening before anyone said who they are) by Mandate itself.
        let actor = self.actor_or_system("endpoint", "issuer key made at the first start");
        let key = self.generate_issuer_key()?;
        let kid = key.kid.clone();
        let vault = self.issuer_keys.describe();
        let res = self.write(|tx, now| {
            let inserted = tx.execute(
                "INSERT INTO meta (key, value) VALUES ('issuer_kid', ?1) ON CONFLICT DO NOTHING",
                params![&kid],
            )?;
            if inserted == 1 {
                audit::append(
                    tx,
                    now,
                    NewEvent::new(&actor, "issuer.key_created", Decision::Allow)
                        .target(Target::new("key", &kid, "issuer signing key"))
                        .details(json!({"kid": kid, "alg": "EdDSA", "vault": vault})),
                )?;
            }
            Ok(inserted)
        });
        match res {
            Ok(1) => Ok(key),
            // Another process created one first: use theirs.
            Ok(_) => {
                let _ = self.destroy_issuer_key(&kid);
                self.issuer_key()
            }
            Err(e) => {
                let _ = self.destroy_issuer_key(&kid);
                Err(e)
            }
        }
    }

    // ----- members --------------------------------------------------------------------------

    /// Add a team member.
    pub fn add_member(&self, name: &str, email: Option<&str>) -> Result<Member> {
        let name = MemberName::parse(name)?;
        let email = validate_email(email)?;
        let actor = self.actor()?;
        self.write(|tx, now| {
            let m = Member {
                id: MemberId::generate(),
                name: name.clone(),
                email: email.clone(),
                created_at: now,
            };
            insert_member(tx, &m, &actor, now)?;
            Ok(m)
        })
    }

    /// Every team member, by name.
    pub fn list_members(&self) -> Result<Vec<Member>> {
        let mut guard = self.lock()?;
        let conn = guard.tx()?;
        let rows = conn.query_map(
            "SELECT id, name, email, created_at FROM members ORDER BY name",
            params![],
            |r| {
                Ok((
                    r.get::<String>(0)?,
                    r.get::<String>(1)?,
                    r.get::<Option<String>>(2)?,
                    r.get::<String>(3)?,
                ))
            },
        )?;
        let mut out = Vec::new();
        for (id, name, email, created) in rows {
            out.push(Member {
                id: MemberId(id),
                name: MemberName::from_db(name),
                email,
                created_at: parse_time(&created)?,
            });
        }
        Ok(out)
    }

    // ----- connections ----------------------------------------------------------------------

    /// Register a connection and the actions it offers.
    pub fn add_connection(&self, new: NewConnection) -> Result<Connection> {
        self.add_connection_with(new, |_, _, _, _| Ok(()))
    }

    /// [`Mandate::add_connection`], running `extra(tx, id, name, now)` in the same
    /// transaction (the secret broker writes its settings and event there).
    pub(crate) fn add_connection_with(
        &self,
        new: NewConnection,
        extra: impl FnOnce(&Tx<'_>, &str, &str, DateTime<Utc>) -> Result<()>,
    ) -> Result<Connection> {
        let name = ConnectionName::parse(&new.name)?;
        let base_url = validate_base_url(&new.base_url)?;
        let mut actions = Vec::new();
        let mut seen = BTreeSet::new();
        for a in &new.actions {
            let a = ConnectionAction::parse(a)?;
            if !seen.insert(a.name.clone()) {
                return Err(Error::invalid(format!(
                    "the action '{}' is listed twice; give each action once",
                    a.name
                )));
            }
            actions.push(a);
        }
        let floor = new.trust_floor.unwrap_or(TrustState::Pending);
        let actor = self.actor()?;
        let id = self.write(|tx, now| {
            if exists(tx, "connections", name.as_str())? {
                return Err(Error::AlreadyExists {
                    kind: "connection",
                    name: name.to_string(),
                });
            }
            let id = ConnectionId::generate();
            tx.execute(
                "INSERT INTO connections (id, name, base_url, trust_floor, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![id.as_str(), name.as_str(), base_url, floor.as_str(), ts(now)],
            )?;
            for a in &actions {
                tx.execute(
                    "INSERT INTO connection_actions (connection_id, name, method, path_pattern)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![id.as_str(), a.name, a.method, a.path_pattern],
                )?;
            }
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "connection.added", Decision::Allow)
                    .target(Target::new("connection", id.as_str(), name.as_str()))
                    .details(json!({
                        "base_url": base_url,
                        "actions": actions.iter().map(|a| format!("{}={}:{}", a.name, a.method, a.path_pattern)).collect::<Vec<_>>(),
                        "trust_floor": floor.as_str(),
                    })),
            )?;
            extra(tx, id.as_str(), name.as_str(), now)?;
            Ok(id)
        })?;
        self.get_connection(id.as_str())
    }

    /// Every connection, by name.
    pub fn list_connections(&self) -> Result<Vec<Connection>> {
        let mut guard = self.lock()?;
        let conn = guard.tx()?;
        let names: Vec<String> = conn.query_map(
            "SELECT name FROM connections ORDER BY name",
            params![],
            |r| r.get(0),
        )?;
        names.iter().map(|n| connection_tx(&conn, n)).collect()
    }

    /// One connection by name (or id).
    pub fn get_connection(&self, name: &str) -> Result<Connection> {
        let mut guard = self.lock()?;
        let conn = guard.tx()?;
        connection_tx(&conn, name)
    }

    /// Add a database connection: its credential will be a database URL, which `mandate exec`
    /// hands to a program in `variable` (default `DATABASE_URL`) when the program's token
    /// holds the scope `NAME:connect`. Audited as `connection.added` with `kind: database`.
    pub fn add_database_connection(
        &self,
        name: &str,
        variable: Option<&str>,
        trust_floor: Option<TrustState>,
    ) -> Result<Connection> {
        let name = ConnectionName::parse(name)?;
        let variable = validate_variable(variable.unwrap_or(DEFAULT_DATABASE_VARIABLE))?;
        let floor = trust_floor.unwrap_or(TrustState::Pending);
        let audience = database_audience(name.as_str());
        let actor = self.actor()?;
        let id = self.write(|tx, now| {
            if exists(tx, "connections", name.as_str())? {
                return Err(Error::AlreadyExists {
                    kind: "connection",
                    name: name.to_string(),
                });
            }
            let id = ConnectionId::generate();
            tx.execute(
                "INSERT INTO connections (id, name, base_url, trust_floor, created_at, updated_at,
                                          kind, variable)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, 'database', ?6)",
                params![
                    id.as_str(),
                    name.as_str(),
                    audience,
                    floor.as_str(),
                    ts(now),
                    variable
                ],
            )?;
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "connection.added", Decision::Allow)
                    .target(Target::new("connection", id.as_str(), name.as_str()))
                    .details(json!({
                        "kind": "database",
                        "variable": variable,
                        "actions": [DATABASE_ACTION],
                        "trust_floor": floor.as_str(),
                    })),
            )?;
            Ok(id)
        })?;
        self.get_connection(id.as_str())
    }

    /// Store (or replace) a connection's credential in the OS keychain. The value must fit the
    /// connection (`fit::check_value`: a database URL for a database connection, never another
    /// vendor's token). Audited as `connection.secret_set`, or `connection.secret_replaced`
    /// naming the agents that use the connection when it held a credential already. If the
    /// audit write fails, the keychain gets its previous value back.
    pub fn set_connection_secret(&self, name: &str, secret: Sensitive<String>) -> Result<()> {
        if secret.expose().trim().is_empty() {
            return Err(Error::invalid(
                "the secret is empty; nothing was stored. Pipe the credential on standard input, \
                 for example `printf %s \"$TOKEN\" | mandate connection set-secret NAME`",
            ));
        }
        let c = self.get_connection(name)?;
        crate::fit::check_value(&c, &secret)?;
        let actor = self.actor()?;
        let slot = SecretRef::connection(c.id.as_str());
        let previous = if c.has_secret {
            self.keychain_get(slot.clone())?
        } else {
            None
        };
        self.keychain_set(slot.clone(), &secret)?;
        let written = self.write(|tx, now| {
            record_secret_stored(tx, now, &actor, &c, json!({"source": "entered"}))
        });
        if let Err(e) = written {
            self.restore_slot(slot, previous);
            return Err(e);
        }
        Ok(())
    }

    /// Put a keychain slot back as it was (after a failed write): the previous value, or none.
    pub(crate) fn restore_slot(&self, slot: SecretRef, previous: Option<Sensitive<String>>) {
        let undone = match &previous {
            Some(p) => self.keychain_set(slot, p),
            None => self.keychain_delete(slot),
        };
        if let Err(e) = undone {
            tracing::warn!(error = %e, "a keychain change could not be undone after a failed write");
        }
    }

    /// The agents (not revoked) that hold scopes on a connection, with those scopes: what a
    /// new credential affects.
    pub fn agents_using(&self, connection: &str) -> Result<Vec<AgentUse>> {
        let c = self.get_connection(connection)?;
        let mut guard = self.lock()?;
        let conn = guard.tx()?;
        agents_using_tx(&conn, c.id.as_str())
    }

    /// A connection's credential, for the secret broker. Never log or return it to a client.
    pub fn connection_secret(&self, name: &str) -> Result<Option<Sensitive<String>>> {
        let c = self.get_connection(name)?;
        self.keychain_get(SecretRef::connection(c.id.as_str()))
    }

    /// Remove a connection, its credential and every scope granted on it (each agent that
    /// loses scopes is named in the audit event).
    pub fn remove_connection(&self, name: &str) -> Result<Vec<AgentName>> {
        let c = self.get_connection(name)?;
        let actor = self.actor()?;
        // An MCP server's secret variables are keychain entries of their own.
        let mcp_secrets: Vec<String> = self
            .read(|tx| {
                tx.query_opt(
                    "SELECT secret_env FROM mcp_servers WHERE connection_id = ?1",
                    params![c.id.as_str()],
                    |r| r.get::<String>(0),
                )
            })?
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        let affected = self.write(|tx, now| {
            let affected = c.granted_to.clone();
            tx.execute(
                "DELETE FROM agent_scopes WHERE connection_id = ?1",
                params![c.id.as_str()],
            )?;
            for agent in &affected {
                tx.execute(
                    "UPDATE agents SET config_version = config_version + 1, updated_at = ?2
                     WHERE name = ?1",
                    params![agent.as_str(), ts(now)],
                )?;
            }
            tx.execute(
                "DELETE FROM connections WHERE id = ?1",
                params![c.id.as_str()],
            )?;
            // Moves into it can no longer be undone; what they kept goes with it.
            let kept = crate::migrate::close_moves_of(tx, c.id.as_str(), now)?;
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "connection.removed", Decision::Allow)
                    .target(Target::new("connection", c.id.as_str(), c.name.as_str()))
                    .details(json!({
                        "scopes_removed_from": affected,
                        "kept_secrets_deleted": kept.len(),
                    })),
            )?;
            Ok((affected, kept))
        })?;
        let (affected, kept) = affected;
        // The credential goes after the rows: if this fails the secret is orphaned (and
        // unreachable, since the id is gone), never the other way round.
        for slot in std::iter::once(SecretRef::connection(c.id.as_str()))
            .chain(kept.iter().map(|id| SecretRef::moved_previous(id)))
        {
            if let Err(e) = self.keychain_delete(slot) {
                tracing::warn!(connection = %c.name, error = %e, "a credential could not be deleted from the keychain");
            }
        }
        self.forget_mcp_secrets(c.id.as_str(), &mcp_secrets);
        Ok(affected)
    }

    // ----- agents ---------------------------------------------------------------------------

    fn prepare_key(&self, choice: &KeyChoice) -> Result<Option<PreparedKey>> {
        Ok(match choice {
            KeyChoice::None => None,
            KeyChoice::Register { public_key } => Some(PreparedKey {
                public: keys::parse_public_key(public_key)?,
                origin: KeyOrigin::Registered,
                keychain_ref: None,
                file: None,
            }),
            KeyChoice::GenerateInKeychain => {
                let sk = keys::generate();
                let vk = sk.verifying_key();
                let r = SecretRef::agent_key(&keys::thumbprint(&vk));
                self.keychain_set(r.clone(), &keys::signing_key_to_secret(&sk))?;
                Some(PreparedKey {
                    public: vk,
                    origin: KeyOrigin::Keychain,
                    keychain_ref: Some(r),
                    file: None,
                })
            }
            KeyChoice::GenerateToFile { path, format } => {
                let sk = keys::generate();
                write_new_private_file(path, &keys::private_key_file_contents(&sk, *format)?)?;
                Some(PreparedKey {
                    public: sk.verifying_key(),
                    origin: KeyOrigin::File,
                    keychain_ref: None,
                    file: Some(path.clone()),
                })
            }
        })
    }

    fn undo_key(&self, k: &Option<PreparedKey>) {
        if let Some(k) = k {
            if let Some(r) = &k.keychain_ref {
                let _ = self.keychain_delete(r.clone());
            }
            if let Some(f) = &k.file {
                let _ = std::fs::remove_file(f);
            }
        }
    }

    /// Register an agent. All input is checked before anything is written.
    pub fn add_agent(&self, new: NewAgent) -> Result<Agent> {
        self.add_agent_with_ttl(new, None)
    }

    /// [`Mandate::add_agent`] with the longest token lifetime the agent may get
    /// (`None`: the global default, 15 minutes), set in the same change and event.
    pub fn add_agent_with_ttl(&self, new: NewAgent, max_ttl_secs: Option<u32>) -> Result<Agent> {
        if let Some(ttl) = max_ttl_secs
            && (ttl == 0 || ttl > MAX_TTL_SECS)
        {
            return Err(Error::invalid(format!(
                "the maximum token lifetime must be between 1 second and 24 hours; {ttl} s is not"
            )));
        }
        let name = AgentName::parse(&new.name)?;
        let purpose = validate_purpose(&new.purpose)?;
        let scopes = parse_scopes(&new.scopes)?;
        // Validate what needs the database before generating keys or writing files.
        {
            let mut guard = self.lock()?;
            let conn = guard.tx()?;
            check_agent_name_free(&conn, &name)?;
            member_id_tx(&conn, &new.owner)?;
            resolve_scopes(&conn, &scopes)?;
            if let Some(p) = &new.parent {
                let pid = active_agent_for_parent(&conn, p)?;
                check_within_parent(&conn, name.as_str(), &pid, &scopes)?;
            }
        }
        if let KeyChoice::Register { public_key } = &new.key {
            keys::parse_public_key(public_key)?;
        }
        let key = self.prepare_key(&new.key)?;
        let actor = self.actor()?;
        let res = self.write(|tx, now| {
            check_agent_name_free(tx, &name)?;
            let owner_id = member_id_tx(tx, &new.owner)?;
            let parent_id = match &new.parent {
                Some(p) => Some(active_agent_for_parent(tx, p)?),
                None => None,
            };
            let grants = resolve_scopes(tx, &scopes)?;
            let mut chain = Vec::new();
            if let Some(pid) = &parent_id {
                check_within_parent(tx, name.as_str(), pid, &scopes)?;
                chain = lineage::names(&lineage::ancestors_from(tx, pid)?);
            }
            let id = AgentId::generate();
            tx.execute(
                "INSERT INTO agents (id, name, purpose, owner_id, parent_id, max_token_ttl_secs,
                                     created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
                params![
                    id.as_str(),
                    name.as_str(),
                    purpose,
                    owner_id.as_str(),
                    parent_id.as_ref().map(|p| p.as_str().to_string()),
                    max_ttl_secs,
                    ts(now)
                ],
            )?;
            insert_grants(tx, &id, &grants)?;
            let kid = match &key {
                Some(k) => Some(insert_key(tx, &id, k, now)?),
                None => None,
            };
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "agent.created", Decision::Allow)
                    .target(Target::new("agent", id.as_str(), name.as_str()))
                    .agent(id.as_str())
                    .details(json!({
                        "purpose": purpose,
                        "owner": new.owner,
                        "parent": new.parent,
                        "parent_chain": (!chain.is_empty()).then_some(&chain),
                        "scopes": scopes.iter().map(Scope::as_str).collect::<Vec<_>>(),
                        "key": kid.as_ref().map(|kid| json!({"kid": kid, "origin": key.as_ref().map(|k| k.origin.as_str())})),
                        "max_token_ttl_secs": max_ttl_secs,
                    })),
            )?;
            Ok(id)
        });
        match res {
            Ok(id) => self.get_agent(id.as_str()),
            Err(e) => {
                self.undo_key(&key);
                Err(e)
            }
        }
    }

    /// Every agent, by name.
    pub fn list_agents(&self) -> Result<Vec<Agent>> {
        let mut guard = self.lock()?;
        let conn = guard.tx()?;
        let now = self.now();
        let ids: Vec<String> =
            conn.query_map("SELECT id FROM agents ORDER BY name", params![], |r| {
                r.get(0)
            })?;
        ids.iter().map(|id| load_agent(&conn, id, now)).collect()
    }

    /// One agent by name (or id).
    pub fn get_agent(&self, name: &str) -> Result<Agent> {
        let mut guard = self.lock()?;
        let conn = guard.tx()?;
        let id = agent_id_tx(&conn, name)?;
        load_agent(&conn, id.as_str(), self.now())
    }

    /// Change an agent; its config version goes up by one. Revoked agents cannot be edited.
    pub fn edit_agent(&self, name: &str, edit: AgentEdit) -> Result<Agent> {
        let purpose = edit.purpose.as_deref().map(validate_purpose).transpose()?;
        let add = parse_scopes(&edit.add_scopes)?;
        let remove = parse_scopes(&edit.remove_scopes)?;
        if let Some(Some(ttl)) = edit.max_token_ttl_secs
            && (ttl == 0 || ttl > MAX_TTL_SECS)
        {
            return Err(Error::invalid(format!(
                "the maximum token lifetime must be between 1 second and 24 hours; {ttl} s is not"
            )));
        }
        let actor = self.actor()?;
        let id = self.write(|tx, now| {
            let agent = load_agent(tx, agent_id_tx(tx, name)?.as_str(), now)?;
            refuse_if_revoked(&agent, "edit")?;
            let mut changes = serde_json::Map::new();
            if let Some(p) = &purpose {
                tx.execute(
                    "UPDATE agents SET purpose = ?2 WHERE id = ?1",
                    params![agent.id.as_str(), p],
                )?;
                changes.insert("purpose".into(), json!(p));
            }
            if let Some(o) = &edit.owner {
                let oid = member_id_tx(tx, o)?;
                tx.execute(
                    "UPDATE agents SET owner_id = ?2 WHERE id = ?1",
                    params![agent.id.as_str(), oid.as_str()],
                )?;
                changes.insert("owner".into(), json!(o));
            }
            let mut new_parent = None;
            if let Some(parent) = &edit.parent {
                let pid = match parent {
                    Some(p) => {
                        let pid = active_agent_for_parent(tx, p)?;
                        if creates_cycle(tx, &agent.id, &pid)? {
                            return Err(Error::invalid(format!(
                                "'{p}' cannot be the parent of '{}': that would make a cycle",
                                agent.name
                            )));
                        }
                        Some(pid)
                    }
                    None => None,
                };
                tx.execute(
                    "UPDATE agents SET parent_id = ?2 WHERE id = ?1",
                    params![agent.id.as_str(), pid.as_ref().map(AgentId::as_str)],
                )?;
                changes.insert("parent".into(), json!(parent));
                new_parent = Some(pid);
            }
            for s in &remove {
                if !agent.scopes.contains(s) {
                    return Err(Error::invalid(format!(
                        "'{}' does not hold the scope '{s}', so it cannot be removed",
                        agent.name
                    )));
                }
            }
            let grants = resolve_scopes(tx, &add)?;
            // A sub-agent never holds more than its parent: the scopes it gains, and with a
            // new parent every scope it keeps, must be the parent's.
            let parent_after = match &new_parent {
                Some(p) => p.clone(),
                None => match &agent.parent {
                    Some(p) => Some(agent_id_tx(tx, p.as_str())?),
                    None => None,
                },
            };
            if let Some(pid) = &parent_after {
                let must_fit: Vec<Scope> = if new_parent.is_some() {
                    agent
                        .scopes
                        .iter()
                        .filter(|s| !remove.contains(s))
                        .chain(add.iter())
                        .cloned()
                        .collect()
                } else {
                    add.clone()
                };
                check_within_parent(tx, agent.name.as_str(), pid, &must_fit)?;
            }
            for s in &remove {
                tx.execute(
                    "DELETE FROM agent_scopes WHERE agent_id = ?1 AND scope = ?2",
                    params![agent.id.as_str(), s.as_str()],
                )?;
            }
            let new_grants: Vec<_> = grants
                .into_iter()
                .filter(|(s, _)| !agent.scopes.contains(s))
                .collect();
            insert_grants(tx, &agent.id, &new_grants)?;
            if !add.is_empty() {
                changes.insert(
                    "scopes_added".into(),
                    json!(add.iter().map(Scope::as_str).collect::<Vec<_>>()),
                );
            }
            if !remove.is_empty() {
                changes.insert(
                    "scopes_removed".into(),
                    json!(remove.iter().map(Scope::as_str).collect::<Vec<_>>()),
                );
            }
            // Narrowing a parent narrows every agent below it, each change audited.
            let narrowed = if remove.is_empty() {
                Vec::new()
            } else {
                narrow_descendants(tx, &actor, &agent, &remove, now)?
            };
            if !narrowed.is_empty() {
                changes.insert("also_removed_from".into(), json!(narrowed));
            }
            if let Some(d) = edit.dpop_required {
                tx.execute(
                    "UPDATE agents SET dpop_required = ?2 WHERE id = ?1",
                    params![agent.id.as_str(), d],
                )?;
                changes.insert("dpop_required".into(), json!(d));
            }
            if let Some(ttl) = edit.max_token_ttl_secs {
                tx.execute(
                    "UPDATE agents SET max_token_ttl_secs = ?2 WHERE id = ?1",
                    params![agent.id.as_str(), ttl],
                )?;
                changes.insert("max_token_ttl_secs".into(), json!(ttl));
            }
            if changes.is_empty() {
                return Err(Error::invalid(
                    "nothing to change: give at least one of --purpose, --owner, --parent, \
                     --add-scope, --remove-scope, --dpop, --max-ttl",
                ));
            }
            bump_version(tx, &agent.id, now)?;
            changes.insert("config_version".into(), json!(agent.config_version + 1));
            let chain = match &parent_after {
                Some(pid) => lineage::names(&lineage::ancestors_from(tx, pid)?),
                None => Vec::new(),
            };
            if !chain.is_empty() {
                changes.insert("parent_chain".into(), json!(chain));
            }
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "agent.edited", Decision::Allow)
                    .target(Target::new("agent", agent.id.as_str(), agent.name.as_str()))
                    .agent(agent.id.as_str())
                    .details(serde_json::Value::Object(changes)),
            )?;
            Ok(agent.id)
        })?;
        self.get_agent(id.as_str())
    }

    fn set_status(
        &self,
        name: &str,
        to: AgentStatus,
        reason: Option<&str>,
        action: &str,
    ) -> Result<Agent> {
        let actor = self.actor()?;
        let reason = reason
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(String::from);
        let (id, keychain_keys) = self.write(|tx, now| {
            let agent = load_agent(tx, agent_id_tx(tx, name)?.as_str(), now)?;
            refuse_if_revoked(&agent, action)?;
            match (agent.status, to) {
                (AgentStatus::Suspended, AgentStatus::Suspended) => {
                    return Err(Error::Conflict(format!(
                        "'{}' is already suspended",
                        agent.name
                    )));
                }
                (AgentStatus::Active, AgentStatus::Active) => {
                    return Err(Error::Conflict(format!(
                        "'{}' is already active",
                        agent.name
                    )));
                }
                _ => {}
            }
            tx.execute(
                "UPDATE agents SET status = ?2, status_reason = ?3 WHERE id = ?1",
                params![agent.id.as_str(), to.as_str(), reason],
            )?;
            bump_version(tx, &agent.id, now)?;
            // A status change does not alter what the agent may do: no review needed.
            trust::records::keep_reviewed(tx, agent.id.as_str())?;
            let mut ev = NewEvent::new(&actor, &format!("agent.{action}"), Decision::Allow)
                .target(Target::new("agent", agent.id.as_str(), agent.name.as_str()))
                .agent(agent.id.as_str())
                .details(json!({"from": agent.status.as_str(), "to": to.as_str()}));
            if !agent.parents.is_empty() {
                ev.details["parent_chain"] = json!(agent.parents);
            }
            if let Some(r) = &reason {
                ev = ev.reason(r.clone());
            }
            audit::append(tx, now, ev)?;
            let kc: Vec<String> = agent
                .keys
                .iter()
                .filter(|k| k.origin == KeyOrigin::Keychain)
                .map(|k| k.kid.clone())
                .collect();
            Ok((agent.id, kc))
        })?;
        if to == AgentStatus::Revoked {
            // Revocation is final: the private keys this machine holds are no longer needed.
            // The revocation has committed; a keychain hiccup must not report it as failed.
            for kid in keychain_keys {
                if let Err(e) = self.keychain_delete(SecretRef::agent_key(&kid)) {
                    tracing::warn!(%kid, error = %e, "revoked agent's private key could not be deleted from the keychain");
                }
            }
        }
        self.get_agent(id.as_str())
    }

    /// Suspend an agent: it gets no tokens until resumed.
    pub fn suspend_agent(&self, name: &str, reason: Option<&str>) -> Result<Agent> {
        self.set_status(name, AgentStatus::Suspended, reason, "suspended")
    }

    /// Resume a suspended agent.
    pub fn resume_agent(&self, name: &str) -> Result<Agent> {
        self.set_status(name, AgentStatus::Active, None, "resumed")
    }

    /// Revoke an agent, for good. A reason is required: it goes into the audit trail.
    pub fn revoke_agent(&self, name: &str, reason: &str) -> Result<Agent> {
        if reason.trim().is_empty() {
            return Err(Error::invalid(
                "say why the agent is revoked (--reason): the audit trail records it",
            ));
        }
        self.set_status(name, AgentStatus::Revoked, Some(reason), "revoked")
    }

    /// Give an agent a new key. Its current keys stay valid for `overlap`, then are refused.
    pub fn rotate_agent_key(
        &self,
        name: &str,
        choice: KeyChoice,
        overlap: Duration,
    ) -> Result<Agent> {
        if matches!(choice, KeyChoice::None) {
            return Err(Error::invalid(
                "rotation needs a new key: generate one or give a public key",
            ));
        }
        if overlap < Duration::zero() || overlap > MAX_ROTATION_OVERLAP {
            return Err(Error::invalid("the overlap must be between 0 and 30 days"));
        }
        {
            let mut guard = self.lock()?;
            let conn = guard.tx()?;
            let agent = load_agent(&conn, agent_id_tx(&conn, name)?.as_str(), self.now())?;
            refuse_if_revoked(&agent, "rotate the key of")?;
        }
        if let KeyChoice::Register { public_key } = &choice {
            keys::parse_public_key(public_key)?;
        }
        let key = self.prepare_key(&choice)?;
        let actor = self.actor()?;
        let res = self.write(|tx, now| {
            let agent = load_agent(tx, agent_id_tx(tx, name)?.as_str(), now)?;
            refuse_if_revoked(&agent, "rotate the key of")?;
            let Some(k) = &key else {
                return Err(Error::invalid("rotation needs a new key"));
            };
            let until = now + overlap;
            let mut retiring = Vec::new();
            for old in agent.keys.iter().filter(|k| k.is_active(now)) {
                let end = old.expires_at.map_or(until, |e| e.min(until));
                tx.execute(
                    "UPDATE agent_keys SET expires_at = ?2 WHERE kid = ?1",
                    params![old.kid, ts(end)],
                )?;
                retiring.push(json!({"kid": old.kid, "accepted_until": ts(end)}));
            }
            let kid = insert_key(tx, &agent.id, k, now)?;
            bump_version(tx, &agent.id, now)?;
            // Within policy: a key Mandate generated. A public key registered from outside is
            // configuration drift, to be reviewed.
            let within_policy = k.origin != KeyOrigin::Registered;
            if within_policy {
                trust::records::keep_reviewed(tx, agent.id.as_str())?;
            }
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "agent.key_rotated", Decision::Allow)
                    .target(Target::new("agent", agent.id.as_str(), agent.name.as_str()))
                    .agent(agent.id.as_str())
                    .details(json!({
                        "new_kid": kid,
                        "origin": k.origin.as_str(),
                        "retiring": retiring,
                        "within_policy": within_policy,
                    })),
            )?;
            Ok(agent.id)
        });
        match res {
            Ok(id) => self.get_agent(id.as_str()),
            Err(e) => {
                self.undo_key(&key);
                Err(e)
            }
        }
    }

    /// Set or clear a manual trust decision. A reason is required when setting one.
    pub fn set_trust_override(
        &self,
        name: &str,
        state: Option<TrustState>,
        reason: &str,
    ) -> Result<Agent> {
        let reason = reason.trim();
        if state.is_some() && reason.is_empty() {
            return Err(Error::invalid(
                "say why you override the trust state (--reason): the audit trail records it",
            ));
        }
        let actor = self.actor()?;
        let id = self.write(|tx, now| {
            let agent = load_agent(tx, agent_id_tx(tx, name)?.as_str(), now)?;
            refuse_if_revoked(&agent, "change the trust of")?;
            tx.execute(
                "UPDATE agents SET trust_override = ?2, trust_override_reason = ?3 WHERE id = ?1",
                params![
                    agent.id.as_str(),
                    state.map(|s| s.as_str()),
                    state.map(|_| reason)
                ],
            )?;
            bump_version(tx, &agent.id, now)?;
            // A person just decided the agent's trust: that is its review too.
            trust::records::keep_reviewed(tx, agent.id.as_str())?;
            let mut ev = NewEvent::new(&actor, "agent.trust_overridden", Decision::Allow)
                .target(Target::new("agent", agent.id.as_str(), agent.name.as_str()))
                .agent(agent.id.as_str())
                .details(json!({
                    "from": agent.trust.state.as_str(),
                    "override": state.map(|s| s.as_str()),
                    "computed": agent.trust.computed.as_str(),
                }));
            if !reason.is_empty() {
                ev = ev.reason(reason);
            }
            audit::append(tx, now, ev)?;
            Ok(agent.id)
        })?;
        self.get_agent(id.as_str())
    }

    /// The private key of an agent whose key this machine generated into the keychain
    /// (the newest active one), for the `mandate token` credential helper.
    pub fn agent_signing_key(&self, name: &str) -> Result<(String, SigningKey)> {
        let agent = self.get_agent(name)?;
        let now = self.now();
        let key = agent
            .keys
            .iter()
            .filter(|k| k.origin == KeyOrigin::Keychain && k.is_active(now))
            .max_by_key(|k| k.created_at)
            .ok_or_else(|| {
                Error::Conflict(format!(
                    "'{}' has no private key in this machine's keychain; generate one with \
                     `mandate agent rotate-key {}` or sign assertions with the agent's own key",
                    agent.name, agent.name
                ))
            })?;
        let secret = self
            .keychain_get(SecretRef::agent_key(&key.kid))?
            .ok_or_else(|| {
                Error::Conflict(format!(
                    "the private key {} of '{}' is missing from the OS keychain; rotate the key",
                    key.kid, agent.name
                ))
            })?;
        Ok((key.kid.clone(), keys::signing_key_from_secret(&secret)?))
    }
}

// ----- transaction-level helpers (shared by reads and writes) ---------------------------------

/// An optional email address, trimmed; a blank one is none.
pub(crate) fn validate_email(email: Option<&str>) -> Result<Option<String>> {
    match email.map(str::trim).filter(|e| !e.is_empty()) {
        Some(e)
            if e.len() <= 254
                && !e.contains(char::is_whitespace)
                && !e.chars().any(char::is_control)
                && e.split_once('@').is_some_and(|(local, domain)| {
                    !local.is_empty() && !domain.is_empty() && !domain.contains('@')
                }) =>
        {
            Ok(Some(e.to_string()))
        }
        Some(e) => Err(Error::invalid(format!(
            "'{e}' is not an email address; write it as name@example.com, or leave it empty"
        ))),
        None => Ok(None),
    }
}

/// Insert a new member and its `member.added` event, in the caller's transaction.
pub(crate) fn insert_member(
    tx: &Tx<'_>,
    m: &Member,
    actor: &audit::Actor,
    now: DateTime<Utc>,
) -> Result<()> {
    if exists(tx, "members", m.name.as_str())? {
        return Err(Error::AlreadyExists {
            kind: "member",
            name: m.name.to_string(),
        });
    }
    if exists(tx, "agents", m.name.as_str())? {
        return Err(Error::Conflict(format!(
            "'{}' is already an agent's name; a person and an agent must never share an \
             identifier, choose another name",
            m.name
        )));
    }
    tx.execute(
        "INSERT INTO members (id, name, email, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![m.id.as_str(), m.name.as_str(), m.email, ts(now)],
    )?;
    audit::append(
        tx,
        now,
        NewEvent::new(actor, "member.added", Decision::Allow)
            .target(Target::new("member", m.id.as_str(), m.name.as_str()))
            .details(json!({"email": m.email})),
    )?;
    Ok(())
}

pub(crate) fn exists(conn: &Tx<'_>, table: &str, name: &str) -> Result<bool> {
    let sql = format!("SELECT 1 FROM {table} WHERE name = ?1");
    Ok(conn.query_opt(&sql, params![name], |_| Ok(()))?.is_some())
}

fn check_agent_name_free(conn: &Tx<'_>, name: &AgentName) -> Result<()> {
    if exists(conn, "agents", name.as_str())? {
        return Err(Error::AlreadyExists {
            kind: "agent",
            name: name.to_string(),
        });
    }
    if exists(conn, "members", name.as_str())? {
        return Err(Error::Conflict(format!(
            "'{name}' is a team member's name; an agent must never pass for a person, so name \
             the agent after its job (for example '{name}-report-agent')"
        )));
    }
    Ok(())
}

pub(crate) fn agent_id_tx(conn: &Tx<'_>, name: &str) -> Result<AgentId> {
    conn.query_opt(
        "SELECT id FROM agents WHERE name = ?1 OR id = ?1",
        params![name],
        |r| r.get::<String>(0),
    )?
    .map(AgentId)
    .ok_or_else(|| Error::not_found_hint("agent", name, "`mandate agent list` shows the agents"))
}

fn member_id_tx(conn: &Tx<'_>, name: &str) -> Result<MemberId> {
    conn.query_opt(
        "SELECT id FROM members WHERE name = ?1 OR id = ?1",
        params![name],
        |r| r.get::<String>(0),
    )?
    .map(MemberId)
    .ok_or_else(|| {
        Error::not_found_hint(
            "team member",
            name,
            format!("add them first with `mandate member add {name}`"),
        )
    })
}

fn active_agent_for_parent(conn: &Tx<'_>, name: &str) -> Result<AgentId> {
    let id = agent_id_tx(conn, name)?;
    let status: String = conn.query_row(
        "SELECT status FROM agents WHERE id = ?1",
        params![id.as_str()],
        |r| r.get(0),
    )?;
    if status == "revoked" {
        return Err(Error::Conflict(format!(
            "'{name}' is revoked and cannot be a parent agent"
        )));
    }
    Ok(id)
}

/// Refuse any of `scopes` that the parent `parent` does not hold: a sub-agent never holds
/// more than its parent.
fn check_within_parent(
    conn: &Tx<'_>,
    child: &str,
    parent: &AgentId,
    scopes: &[Scope],
) -> Result<()> {
    if scopes.is_empty() {
        return Ok(());
    }
    let pname: String = conn.query_row(
        "SELECT name FROM agents WHERE id = ?1",
        params![parent.as_str()],
        |r| r.get(0),
    )?;
    let held: BTreeSet<String> = conn
        .query_map(
            "SELECT scope FROM agent_scopes WHERE agent_id = ?1",
            params![parent.as_str()],
            |r| r.get::<String>(0),
        )?
        .into_iter()
        .collect();
    let outside: Vec<&str> = scopes
        .iter()
        .map(Scope::as_str)
        .filter(|s| !held.contains(*s))
        .collect();
    match outside.as_slice() {
        [] => Ok(()),
        [one] => Err(Error::invalid(format!(
            "the sub-agent '{child}' cannot hold the scope {one}: its parent agent '{pname}' does \
             not, and a sub-agent never holds more than its parent. Grant {one} to '{pname}' \
             first, or leave it out"
        ))),
        many => Err(Error::invalid(format!(
            "the sub-agent '{child}' cannot hold the scopes {}: its parent agent '{pname}' does \
             not, and a sub-agent never holds more than its parent. Grant them to '{pname}' \
             first, or leave them out",
            many.join(", ")
        ))),
    }
}

/// Take `removed` from every (unrevoked) agent below `parent`, each with its own
/// `agent.edited` event; returns the names of the agents that lost scopes.
fn narrow_descendants(
    tx: &Tx<'_>,
    actor: &audit::Actor,
    parent: &Agent,
    removed: &[Scope],
    now: DateTime<Utc>,
) -> Result<Vec<String>> {
    let mut narrowed = Vec::new();
    for child in lineage::descendants(tx, parent.id.as_str())? {
        if child.status == AgentStatus::Revoked {
            continue;
        }
        let mut lost = Vec::new();
        for s in removed {
            let n = tx.execute(
                "DELETE FROM agent_scopes WHERE agent_id = ?1 AND scope = ?2",
                params![child.id.as_str(), s.as_str()],
            )?;
            if n > 0 {
                lost.push(s.as_str());
            }
        }
        if lost.is_empty() {
            continue;
        }
        bump_version(tx, &child.id, now)?;
        let version: u32 = tx.query_row(
            "SELECT config_version FROM agents WHERE id = ?1",
            params![child.id.as_str()],
            |r| r.get(0),
        )?;
        let chain = lineage::names(&lineage::ancestors(tx, child.id.as_str())?);
        audit::append(
            tx,
            now,
            NewEvent::new(actor, "agent.edited", Decision::Allow)
                .target(Target::new("agent", child.id.as_str(), child.name.as_str()))
                .agent(child.id.as_str())
                .reason(format!(
                    "its parent agent '{}' lost {}: a sub-agent never holds more than its parent",
                    parent.name,
                    lost.join(", ")
                ))
                .details(json!({
                    "scopes_removed": lost,
                    "because_parent": parent.name.as_str(),
                    "parent_chain": chain,
                    "config_version": version,
                })),
        )?;
        narrowed.push(child.name.to_string());
    }
    Ok(narrowed)
}

fn creates_cycle(conn: &Tx<'_>, child: &AgentId, parent: &AgentId) -> Result<bool> {
    let mut cur = Some(parent.0.clone());
    let mut hops = 0;
    while let Some(id) = cur {
        if id == child.0 {
            return Ok(true);
        }
        hops += 1;
        if hops > 64 {
            return Ok(true);
        }
        cur = conn
            .query_opt(
                "SELECT parent_id FROM agents WHERE id = ?1",
                params![&id],
                |r| r.get::<Option<String>>(0),
            )?
            .flatten();
    }
    Ok(false)
}

/// `(id, name, base_url, has_secret, trust_floor, created, updated, kind, variable,
/// secret_changed_at, preset)` of a connection row.
type ConnectionRow = (
    String,
    String,
    String,
    bool,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i32>,
);

pub(crate) fn connection_tx(conn: &Tx<'_>, name: &str) -> Result<Connection> {
    let row: ConnectionRow = conn
        .query_opt(
            "SELECT c.id, c.name, c.base_url, c.has_secret, c.trust_floor, c.created_at,
                    c.updated_at, c.kind, c.variable, c.secret_changed_at, b.preset, c.min_score
             FROM connections c LEFT JOIN broker_connections b ON b.connection_id = c.id
             WHERE c.name = ?1 OR c.id = ?1",
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
        )?
        .ok_or_else(|| {
            Error::not_found_hint(
                "connection",
                name,
                "`mandate connection list` shows the connections",
            )
        })?;
    let (
        id,
        cname,
        base_url,
        has_secret,
        floor,
        created,
        updated,
        kind,
        variable,
        changed,
        preset,
        min_score,
    ) = row;
    let kind = ConnectionKind::from_db(&kind)?;
    let actions = if kind == ConnectionKind::Database {
        // Not stored: a database connection offers exactly this one action.
        vec![ConnectionAction {
            name: DATABASE_ACTION.to_string(),
            method: String::new(),
            path_pattern: String::new(),
        }]
    } else {
        conn.query_map(
            "SELECT name, method, path_pattern FROM connection_actions
             WHERE connection_id = ?1 ORDER BY name",
            params![&id],
            |r| {
                Ok(ConnectionAction {
                    name: r.get(0)?,
                    method: r.get(1)?,
                    path_pattern: r.get(2)?,
                })
            },
        )?
    };
    let granted_to = conn.query_map(
        "SELECT DISTINCT a.name FROM agent_scopes s JOIN agents a ON a.id = s.agent_id
         WHERE s.connection_id = ?1 ORDER BY a.name",
        params![&id],
        |r| Ok(AgentName::from_db(r.get::<String>(0)?)),
    )?;
    Ok(Connection {
        id: ConnectionId(id),
        name: ConnectionName::from_db(cname),
        kind,
        base_url,
        preset,
        variable,
        actions,
        has_secret,
        secret_changed_at: changed.as_deref().map(parse_time).transpose()?,
        trust_floor: floor.parse()?,
        min_score,
        granted_to,
        created_at: parse_time(&created)?,
        updated_at: parse_time(&updated)?,
    })
}

/// The audience of a database connection's tokens: it has no HTTP base URL, and its real
/// address is part of the secret URL.
pub(crate) fn database_audience(name: &str) -> String {
    format!("urn:mandate:connection:{name}")
}

/// See [`Mandate::agents_using`].
pub(crate) fn agents_using_tx(conn: &Tx<'_>, connection_id: &str) -> Result<Vec<AgentUse>> {
    let rows = conn.query_map(
        "SELECT a.name, s.scope FROM agent_scopes s JOIN agents a ON a.id = s.agent_id
         WHERE s.connection_id = ?1 AND a.status <> 'revoked' ORDER BY a.name, s.scope",
        params![connection_id],
        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
    )?;
    let mut out: Vec<AgentUse> = Vec::new();
    for (agent, scope) in rows {
        match out.last_mut() {
            Some(u) if u.agent.as_str() == agent => u.scopes.push(Scope::from_db(scope)),
            _ => out.push(AgentUse {
                agent: AgentName::from_db(agent),
                scopes: vec![Scope::from_db(scope)],
            }),
        }
    }
    Ok(out)
}

/// Inside a write: record that `c`'s credential in the keychain changed. Sets `has_secret`,
/// raises `secret_version`, and appends `connection.secret_set` or, when it held one,
/// `connection.secret_replaced` with the agents and scopes that use it (what a wrong
/// credential would break). `details` adds to the event (`source`...). Returns the new
/// `secret_version`.
pub(crate) fn record_secret_stored(
    tx: &Tx<'_>,
    now: DateTime<Utc>,
    actor: &crate::audit::Actor,
    c: &Connection,
    details: serde_json::Value,
) -> Result<i64> {
    let version: i64 = tx.query_row(
        "UPDATE connections SET has_secret = 1, secret_version = secret_version + 1,
                secret_changed_at = ?2, updated_at = ?2
         WHERE id = ?1 RETURNING secret_version",
        params![c.id.as_str(), ts(now)],
        |r| r.get(0),
    )?;
    let mut d = json!({"replaced": c.has_secret, "stored_in": "os-keychain"});
    if c.has_secret {
        let uses = agents_using_tx(tx, c.id.as_str())?;
        d["agents_affected"] = json!(uses.iter().map(|u| u.agent.as_str()).collect::<Vec<_>>());
        d["scopes_affected"] = json!(
            uses.iter()
                .flat_map(|u| u.scopes.iter().map(Scope::as_str))
                .collect::<Vec<_>>()
        );
    }
    if let (Some(d), serde_json::Value::Object(extra)) = (d.as_object_mut(), details) {
        d.extend(extra);
    }
    let action = if c.has_secret {
        "connection.secret_replaced"
    } else {
        "connection.secret_set"
    };
    audit::append(
        tx,
        now,
        NewEvent::new(actor, action, Decision::Allow)
            .target(Target::new("connection", c.id.as_str(), c.name.as_str()))
            .details(d),
    )?;
    Ok(version)
}

fn parse_scopes(raw: &[String]) -> Result<Vec<Scope>> {
    let mut out: Vec<Scope> = Vec::new();
    for s in raw {
        let s = Scope::parse(s)?;
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

/// Check each scope against its connection's actions; returns (scope, connection id).
fn resolve_scopes(conn: &Tx<'_>, scopes: &[Scope]) -> Result<Vec<(Scope, ConnectionId)>> {
    let mut out = Vec::new();
    for s in scopes {
        let c = connection_tx(conn, s.connection()).map_err(|_| {
            Error::invalid(format!(
                "the scope '{s}' names the connection '{}', which does not exist; add it with \
                 `mandate connection add {} --base-url URL --action ...`",
                s.connection(),
                s.connection()
            ))
        })?;
        if !c.actions.iter().any(|a| a.name == s.action()) {
            let offered: Vec<&str> = c.actions.iter().map(|a| a.name.as_str()).collect();
            return Err(Error::invalid(format!(
                "the connection '{}' offers no action '{}'; it offers: {}",
                c.name,
                s.action(),
                if offered.is_empty() {
                    "none yet".to_string()
                } else {
                    offered.join(", ")
                }
            )));
        }
        out.push((s.clone(), c.id));
    }
    Ok(out)
}

fn insert_grants(tx: &Tx<'_>, agent: &AgentId, grants: &[(Scope, ConnectionId)]) -> Result<()> {
    for (s, c) in grants {
        tx.execute(
            "INSERT INTO agent_scopes (agent_id, scope, connection_id) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
            params![agent.as_str(), s.as_str(), c.as_str()],
        )?;
    }
    Ok(())
}

fn insert_key(tx: &Tx<'_>, agent: &AgentId, k: &PreparedKey, now: DateTime<Utc>) -> Result<String> {
    let kid = keys::thumbprint(&k.public);
    let taken = tx
        .query_opt(
            "SELECT 1 FROM agent_keys WHERE kid = ?1",
            params![&kid],
            |_| Ok(()),
        )?
        .is_some();
    if taken {
        return Err(Error::Conflict(
            "this public key is already registered; every agent needs its own key".into(),
        ));
    }
    tx.execute(
        "INSERT INTO agent_keys (kid, agent_id, public_key, origin, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![kid, agent.as_str(), k.public.as_bytes().as_slice(), k.origin.as_str(), ts(now)],
    )?;
    Ok(kid)
}

fn bump_version(tx: &Tx<'_>, agent: &AgentId, now: DateTime<Utc>) -> Result<()> {
    tx.execute(
        "UPDATE agents SET config_version = config_version + 1, updated_at = ?2 WHERE id = ?1",
        params![agent.as_str(), ts(now)],
    )?;
    Ok(())
}

fn refuse_if_revoked(agent: &Agent, what: &str) -> Result<()> {
    if agent.status == AgentStatus::Revoked {
        return Err(Error::Conflict(format!(
            "'{}' is revoked, which is final: you cannot {what} it. Register a new agent instead",
            agent.name
        )));
    }
    Ok(())
}

pub(crate) fn load_agent(conn: &Tx<'_>, id: &str, now: DateTime<Utc>) -> Result<Agent> {
    type Row = (
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        u32,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        bool,
        Option<u32>,
        String,
        String,
    );
    let r: Row = conn
        .query_opt(
            "SELECT a.id, a.name, a.purpose, m.name, p.name, a.config_version, a.status,
                    a.status_reason, a.trust_override, a.trust_override_reason, a.dpop_required,
                    a.max_token_ttl_secs, a.created_at, a.updated_at
             FROM agents a
             LEFT JOIN members m ON m.id = a.owner_id
             LEFT JOIN agents p ON p.id = a.parent_id
             WHERE a.id = ?1",
            params![id],
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
                    r.get(12)?,
                    r.get(13)?,
                ))
            },
        )?
        .ok_or_else(|| Error::not_found("agent", id))?;
    let scopes = conn.query_map(
        "SELECT scope FROM agent_scopes WHERE agent_id = ?1 ORDER BY scope",
        params![id],
        |r| Ok(Scope::from_db(r.get::<String>(0)?)),
    )?;
    let raw_keys = conn.query_map(
        "SELECT kid, public_key, origin, created_at, expires_at FROM agent_keys
         WHERE agent_id = ?1 ORDER BY created_at",
        params![id],
        |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<Vec<u8>>(1)?,
                r.get::<String>(2)?,
                r.get::<String>(3)?,
                r.get::<Option<String>>(4)?,
            ))
        },
    )?;
    let mut keys_out = Vec::with_capacity(raw_keys.len());
    for (kid, pk, origin, created, expires) in raw_keys {
        let arr: [u8; 32] = pk
            .as_slice()
            .try_into()
            .map_err(|_| Error::Storage("a stored public key has the wrong length".into()))?;
        let vk = VerifyingKey::from_bytes(&arr)
            .map_err(|_| Error::Storage("a stored public key is not a valid point".into()))?;
        keys_out.push(AgentKey {
            kid,
            public_x: keys::b64url(&arr),
            fingerprint: keys::fingerprint(&vk),
            origin: KeyOrigin::from_db(&origin)?,
            created_at: parse_time(&created)?,
            expires_at: expires.as_deref().map(parse_time).transpose()?,
        });
    }
    let last_activity: Option<String> = conn.query_opt(
        "SELECT time FROM audit_events WHERE agent_id = ?1 ORDER BY seq DESC LIMIT 1",
        params![id],
        |r| r.get(0),
    )?;
    let (
        id,
        name,
        purpose,
        owner,
        parent,
        config_version,
        status,
        status_reason,
        t_override,
        t_reason,
        dpop_required,
        max_ttl,
        created,
        updated,
    ) = r;
    let status = AgentStatus::from_db(&status)?;
    let created_at = parse_time(&created)?;
    let chain = lineage::ancestors(conn, &id)?;
    let held_by_parent = lineage::holding_parent(&chain).map(|p| ParentHold {
        parent: p.name.clone(),
        status: p.status,
        message: lineage::held_back(&name, p.name.as_str(), p.status),
    });
    let override_ = match t_override {
        Some(s) => Some(TrustOverride {
            state: s.parse()?,
            reason: t_reason.unwrap_or_default(),
        }),
        None => None,
    };
    let (behaviour, behaviour_at) = trust::behaviour::stored(conn, &id)?;
    let reviewed = trust::records::reviewed_version(conn, &id)?;
    let settings = trust::records::settings(conn)?;
    let mut trust = trust::evaluate(TrustInputs {
        status,
        has_owner: owner.is_some(),
        keys: &keys_out,
        scopes: &scopes,
        created_at,
        now,
        override_,
        behaviour,
        behaviour_at,
        attestations: trust::records::counted(conn, &id, config_version)?,
        drift: (config_version > reviewed).then_some(trust::Drift {
            config_version,
            reviewed_version: reviewed,
        }),
        thresholds: settings.thresholds,
    });
    trust.organisation_floor = settings.organisation_floor;
    Ok(Agent {
        id: AgentId(id),
        name: AgentName::from_db(name),
        purpose,
        owner: owner.map(MemberName::from_db),
        parent: parent.map(AgentName::from_db),
        config_version,
        status,
        status_reason,
        scopes,
        keys: keys_out,
        trust,
        dpop_required,
        max_token_ttl_secs: max_ttl,
        created_at,
        updated_at: parse_time(&updated)?,
        last_activity: last_activity.as_deref().map(parse_time).transpose()?,
        parents: chain.into_iter().map(|a| a.name).collect(),
        held_by_parent,
    })
}
