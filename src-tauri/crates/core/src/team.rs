//! A team server's identity and its first admin: `mandate server init`.
//!
//! The issuer of a team server is its public URL (`https://mandate.acme.internal:8443`), and
//! every instance serving the same database must use the same one, or an assertion addressed
//! to one instance would be refused by the next. So the URL is recorded once, at init, in the
//! database (`meta.public_url`), and `mandate server` refuses to start under another.
//!
//! Init also makes the first admin and a one-time invite code with which that person enrols
//! their own key (issue 21's `mandate team join URL CODE`). Only the code's SHA-256 is stored
//! (`member_invites`), it expires (24 hours unless told otherwise) and it can be redeemed once:
//! [`Mandate::redeem_invite`] consumes it in the same transaction that checks it, so two
//! concurrent redemptions cannot both succeed, and every refusal is audited.
//!
//! `mandate team join` redeems a code and enrols the member's public key in one transaction
//! ([`Mandate::join_team`]); `mandate team invite` on the server host makes invites while no
//! admin has joined yet (afterwards, admins invite through the member API, `team_access.rs`).
//!
//! What it is not: what a signed-in member may do (`team_access.rs`), how members get tokens
//! (`oauth/member.rs`), or the server process (the `mandate-server` crate).

use chrono::{DateTime, Duration, Utc};
use ed25519_dalek::VerifyingKey;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::Mandate;
use crate::audit::{self, Actor, Decision, NewEvent, Target};
use crate::error::{Error, Result};
use crate::keys;
use crate::model::{Member, MemberId, MemberName};
use crate::secret::Sensitive;
use crate::store::params;

/// How long an invite code is valid unless told otherwise.
pub const DEFAULT_INVITE_TTL: Duration = Duration::hours(24);
/// The longest an invite may be valid.
pub const MAX_INVITE_TTL: Duration = Duration::days(7);

/// A member's role on a team server: admins manage members, connections and MCP servers (and
/// may act on any agent); members manage the agents they own and decide their approvals;
/// auditors read and export only (`team_access.rs` holds the rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Auditor => "auditor",
        }
    }

    /// `admin`, `member` or `auditor`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            "auditor" => Some(Role::Auditor),
            _ => None,
        }
    }
}

/// What `mandate server init` made.
#[derive(Debug)]
pub struct TeamInit {
    pub public_url: String,
    pub admin: Member,
    /// The one-time code; shown once, never stored.
    pub invite_code: Sensitive<String>,
    pub invite_expires_at: DateTime<Utc>,
    /// The issuer key's id (the key is in the vault: a PKCS#11 token on a team server).
    pub issuer_kid: String,
}

/// An invite that was redeemed.
#[derive(Debug, Clone)]
pub struct RedeemedInvite {
    pub member: MemberId,
    pub member_name: String,
    pub role: Role,
}

/// Check a team server's public URL: `https://host[:port]` with nothing after it (a loopback
/// host may use `http`, for a server behind a TLS-terminating proxy on the same machine).
/// Returns it without a trailing slash.
pub fn check_public_url(raw: &str) -> Result<String> {
    let trimmed = raw.trim().trim_end_matches('/');
    let u = url::Url::parse(trimmed).map_err(|e| {
        Error::invalid(format!(
            "'{raw}' is not a URL ({e}); give the address agents use, for example \
             https://mandate.acme.internal:8443"
        ))
    })?;
    let host = u.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match u.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(Error::invalid(format!(
                "the public URL '{raw}' must be https:// (agents on other machines send signed \
                 assertions and receive tokens over it)"
            )));
        }
    }
    if host.is_empty()
        || !u.username().is_empty()
        || u.password().is_some()
        || u.query().is_some()
        || u.fragment().is_some()
        || (u.path() != "/" && !u.path().is_empty())
    {
        return Err(Error::invalid(format!(
            "the public URL '{raw}' must be only a scheme, a host and a port, for example \
             https://mandate.acme.internal:8443"
        )));
    }
    Ok(trimmed.to_string())
}

pub(crate) fn code_hash(code: &str) -> Vec<u8> {
    Sha256::digest(code.as_bytes()).to_vec()
}

impl Mandate {
    /// The public URL recorded by `mandate server init`, if this database is a team server's.
    pub fn team_public_url(&self) -> Result<Option<String>> {
        self.read(|tx| {
            tx.query_opt(
                "SELECT value FROM meta WHERE key = 'public_url'",
                params![],
                |r| r.get(0),
            )
        })
    }

    /// Make this database a team server's: record `public_url` (the issuer), make sure the
    /// issuer key exists in the vault, add the first admin and an invite code for them, valid
    /// for `ttl`. All or nothing; refused if the database already belongs to a team server or
    /// already has members (invite them with issue 21's `mandate team invite` instead).
    pub fn init_team(
        &self,
        public_url: &str,
        admin: &str,
        email: Option<&str>,
        ttl: Duration,
    ) -> Result<TeamInit> {
        let url = check_public_url(public_url)?;
        let name = MemberName::parse(admin)?;
        let email = email.map(str::trim).filter(|e| !e.is_empty());
        if let Some(e) = email
            && (!e.contains('@') || e.contains(char::is_whitespace))
        {
            return Err(Error::invalid(format!("'{e}' is not an email address")));
        }
        if ttl <= Duration::zero() || ttl > MAX_INVITE_TTL {
            return Err(Error::invalid(
                "an invite must be valid for more than no time and at most 7 days",
            ));
        }
        // The key first: a vault that cannot be reached (a wrong PIN) fails before anything
        // is written.
        // The sealing key before the issuer key: the issuer key's event is the trail's first
        // tagged write, which seals the tag key and would otherwise make the sealing key in
        // Mandate's own name rather than the admin's.
        let actor = self.actor()?;
        if let Some(sealed) = &self.sealed {
            sealed.ensure_key(&actor, |f| self.write(|tx, _| f(tx)))?;
        }
        let key = self.issuer_key()?;
        let code = new_code();
        let hash = code_hash(code.expose());
        let (admin, expires) = self.write(|tx, now| {
            let existing: Option<String> = tx.query_opt(
                "SELECT value FROM meta WHERE key = 'public_url'",
                params![],
                |r| r.get(0),
            )?;
            if let Some(u) = existing {
                return Err(Error::Conflict(format!(
                    "this database is already a team server's, at {u}; nothing was changed"
                )));
            }
            let members: i64 =
                tx.query_row("SELECT count(*) FROM members", params![], |r| r.get(0))?;
            if members > 0 {
                return Err(Error::Conflict(
                    "this database already has team members; `mandate server init` makes the \
                     first one. Nothing was changed"
                        .into(),
                ));
            }
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('public_url', ?1)",
                params![url],
            )?;
            audit::append(
                tx,
                now,
                NewEvent::new(&actor, "team.server_initialised", Decision::Allow)
                    .target(Target::new("server", &url, "team server"))
                    .details(json!({"public_url": url, "issuer_kid": key.kid})),
            )?;
            // The first admin is invited as any member is (an agent's name is refused there;
            // the transaction then writes nothing).
            invite_in(
                tx,
                now,
                &actor,
                name.as_str(),
                email,
                Role::Admin,
                ttl,
                &hash,
            )
        })?;
        Ok(TeamInit {
            public_url: url,
            admin,
            invite_code: code,
            invite_expires_at: expires,
            issuer_kid: key.kid,
        })
    }

    /// Redeem an invite code: valid, unexpired and unused, it is used up in the same
    /// transaction (`member.invite_redeemed`); otherwise it is refused and the refusal recorded
    /// (`member.invite_refused`, without the code). [`Mandate::join_team`] enrols the member's
    /// key in the same step.
    pub fn redeem_invite(&self, code: &Sensitive<String>) -> Result<RedeemedInvite> {
        let hash = code_hash(code.expose());
        // The refusal's event commits too: the write succeeds with the refusal inside.
        self.write(|tx, now| redeem_in(tx, now, &hash))?
    }

    /// `mandate team join`: redeem `code` and enrol `key` as the member's key, in one
    /// transaction. The member joins with the invite's role; a member who was removed and
    /// invited again gets the new role, and their older keys stop working. A refused code is
    /// audited (`member.invite_refused`) and enrols nothing.
    pub fn join_team(&self, code: &Sensitive<String>, key: &VerifyingKey) -> Result<Joined> {
        if key.is_weak() {
            return Err(Error::invalid(
                "this public key is a weak (small-order) Ed25519 key; generate a new one",
            ));
        }
        let hash = code_hash(code.expose());
        let kid = keys::thumbprint(key);
        self.write(|tx, now| {
            let r = match redeem_in(tx, now, &hash)? {
                Ok(r) => r,
                Err(e) => return Ok(Err(e)),
            };
            let taken = tx
                .query_opt(
                    "SELECT member_id FROM member_keys WHERE kid = ?1",
                    params![kid],
                    |r| r.get::<String>(0),
                )?
                .is_some();
            if taken {
                // Rolls back the redemption too: the code stays usable with another key.
                return Err(Error::Conflict(
                    "this key is already enrolled on the team server; each member needs a key \
                     of their own. Nothing was changed"
                        .into(),
                ));
            }
            let t = audit::format_time(now);
            tx.execute(
                "INSERT INTO team_roles (member_id, role, joined_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (member_id) DO UPDATE SET role = excluded.role,
                     joined_at = excluded.joined_at, removed_at = NULL",
                params![r.member.as_str(), r.role.as_str(), t],
            )?;
            tx.execute(
                "UPDATE member_keys SET revoked_at = ?2 WHERE member_id = ?1 AND revoked_at IS NULL",
                params![r.member.as_str(), t],
            )?;
            tx.execute(
                "INSERT INTO member_keys (kid, member_id, public_key, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![kid, r.member.as_str(), key.as_bytes().as_slice(), t],
            )?;
            audit::append(
                tx,
                now,
                NewEvent::new(
                    &Actor::member(r.member.as_str(), &r.member_name),
                    "member.key_enrolled",
                    Decision::Allow,
                )
                .target(Target::new("member", r.member.as_str(), &r.member_name))
                .details(json!({"kid": kid, "role": r.role.as_str()})),
            )?;
            Ok(Ok(Joined {
                member: r.member,
                member_name: r.member_name,
                role: r.role,
                kid: kid.clone(),
            }))
        })?
    }

    /// `mandate team invite NAME --role ROLE` on the server host: only while no admin has
    /// joined (the first admin, or again after every admin was removed); afterwards an admin
    /// invites through the member API. Adds the member when new. The code is shown once.
    pub fn invite_member(
        &self,
        name: &str,
        email: Option<&str>,
        role: Role,
        ttl: Duration,
    ) -> Result<Invite> {
        let actor = self.actor()?;
        let code = new_code();
        let hash = code_hash(code.expose());
        let (member, expires) = self.write(|tx, now| {
            let admins: i64 = tx.query_row(
                "SELECT count(*) FROM team_roles WHERE role = 'admin' AND removed_at IS NULL",
                params![],
                |r| r.get(0),
            )?;
            if admins > 0 {
                return Err(Error::Conflict(
                    "this team already has an admin who signed in with their own key; invites \
                     now come from an admin: `mandate team invite NAME --role ROLE` on their \
                     machine (it asks the server as them). Nothing was changed"
                        .into(),
                ));
            }
            invite_in(tx, now, &actor, name, email, role, ttl, &hash)
        })?;
        Ok(Invite {
            member,
            role,
            code,
            expires_at: expires,
        })
    }
}

/// A new one-time code: 32 random bytes, base64url, drawn again while it would begin with
/// `-` or `_` (a code that looks like a command-line flag is easy to mistype or misparse).
pub(crate) fn new_code() -> Sensitive<String> {
    loop {
        let mut b = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
        let code = Sensitive::new(keys::b64url(&b));
        if code
            .expose()
            .starts_with(|c: char| c.is_ascii_alphanumeric())
        {
            return code;
        }
    }
}

/// An invite that was made; the code is shown once and never stored.
#[derive(Debug)]
pub struct Invite {
    pub member: Member,
    pub role: Role,
    pub code: Sensitive<String>,
    pub expires_at: DateTime<Utc>,
}

/// A member who joined with their own key.
#[derive(Debug, Clone)]
pub struct Joined {
    pub member: MemberId,
    pub member_name: String,
    pub role: Role,
    /// The RFC 7638 thumbprint of the enrolled key.
    pub kid: String,
}

/// Invite `name` as `role` inside a write transaction, in `actor`'s name (shared by the server
/// host's `mandate team invite` and an admin's through the member API).
#[allow(clippy::too_many_arguments, reason = "one transaction's inputs")]
pub(crate) fn invite_in(
    tx: &crate::store::Tx<'_>,
    now: DateTime<Utc>,
    actor: &Actor,
    name: &str,
    email: Option<&str>,
    role: Role,
    ttl: Duration,
    hash: &[u8],
) -> Result<(Member, DateTime<Utc>)> {
    let name = MemberName::parse(name)?;
    let email = email.map(str::trim).filter(|e| !e.is_empty());
    if let Some(e) = email
        && (!e.contains('@') || e.contains(char::is_whitespace))
    {
        return Err(Error::invalid(format!("'{e}' is not an email address")));
    }
    if ttl <= Duration::zero() || ttl > MAX_INVITE_TTL {
        return Err(Error::invalid(
            "an invite must be valid for more than no time and at most 7 days",
        ));
    }
    let url: Option<String> = tx.query_opt(
        "SELECT value FROM meta WHERE key = 'public_url'",
        params![],
        |r| r.get(0),
    )?;
    if url.is_none() {
        return Err(Error::Conflict(
            "this database is not a team server's; run `mandate server init` first".into(),
        ));
    }
    let existing: Option<(String, Option<String>, String)> = tx.query_opt(
        "SELECT id, email, created_at FROM members WHERE name = ?1",
        params![name.as_str()],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let member = match existing {
        Some((id, old_email, created)) => {
            let active = tx
                .query_opt(
                    "SELECT 1 FROM team_roles WHERE member_id = ?1 AND removed_at IS NULL",
                    params![id],
                    |_| Ok(()),
                )?
                .is_some();
            if active {
                return Err(Error::Conflict(format!(
                    "'{name}' is already on the team; remove them first to invite them again \
                     with another role. Nothing was changed"
                )));
            }
            Member {
                id: MemberId(id),
                name: name.clone(),
                email: old_email,
                created_at: crate::registry::parse_time(&created)?,
            }
        }
        None => {
            let taken = tx
                .query_opt(
                    "SELECT 1 FROM agents WHERE name = ?1",
                    params![name.as_str()],
                    |_| Ok(()),
                )?
                .is_some();
            if taken {
                return Err(Error::Conflict(format!(
                    "'{name}' is already an agent's name; a person and an agent must never share \
                     an identifier, choose another name"
                )));
            }
            let m = Member {
                id: MemberId::generate(),
                name: name.clone(),
                email: email.map(str::to_string),
                created_at: now,
            };
            tx.execute(
                "INSERT INTO members (id, name, email, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![
                    m.id.as_str(),
                    m.name.as_str(),
                    m.email,
                    audit::format_time(now)
                ],
            )?;
            audit::append(
                tx,
                now,
                NewEvent::new(actor, "member.added", Decision::Allow)
                    .target(Target::new("member", m.id.as_str(), m.name.as_str()))
                    .details(json!({"email": m.email})),
            )?;
            m
        }
    };
    let expires = now + ttl;
    let invite = uuid::Uuid::now_v7().to_string();
    tx.execute(
        "INSERT INTO member_invites (id, member_id, role, code_hash, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            invite,
            member.id.as_str(),
            role.as_str(),
            hash,
            audit::format_time(now),
            audit::format_time(expires)
        ],
    )?;
    audit::append(
        tx,
        now,
        NewEvent::new(actor, "member.invited", Decision::Allow)
            .target(Target::new(
                "member",
                member.id.as_str(),
                member.name.as_str(),
            ))
            .details(json!({
                "invite": invite,
                "role": role.as_str(),
                "expires_at": audit::format_time(expires),
            })),
    )?;
    Ok((member, expires))
}

/// Check and use up the invite whose code hashes to `hash`, inside a write transaction. The
/// inner `Err` is a refusal whose event is already appended (the transaction must commit).
fn redeem_in(
    tx: &crate::store::Tx<'_>,
    now: DateTime<Utc>,
    hash: &[u8],
) -> Result<Result<RedeemedInvite>> {
    let row: Option<(String, String, String, String, Option<String>, String)> = tx.query_opt(
        "SELECT i.id, i.member_id, i.role, i.expires_at, i.used_at, m.name
         FROM member_invites i JOIN members m ON m.id = i.member_id
         WHERE i.code_hash = ?1",
        params![hash],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        },
    )?;
    let refuse = |why: String, invite: Option<&str>| -> Result<Result<RedeemedInvite>> {
        audit::append(
            tx,
            now,
            NewEvent::new(
                &Actor::system("team-server", "team server, no member identified"),
                "member.invite_refused",
                Decision::Deny,
            )
            .reason(why.clone())
            .details(json!({"invite": invite})),
        )?;
        Ok(Err(Error::Refused(why)))
    };
    let Some((id, member, role, expires, used, name)) = row else {
        return refuse(
            "this invite code is not valid; ask an admin for a new one".into(),
            None,
        );
    };
    if used.is_some() {
        return refuse(
            "this invite code was already used; each code works once. Ask an admin for a new one"
                .into(),
            Some(&id),
        );
    }
    if crate::registry::parse_time(&expires)? <= now {
        return refuse(
            "this invite code has expired; ask an admin for a new one".into(),
            Some(&id),
        );
    }
    let role = Role::parse(&role)
        .ok_or_else(|| Error::Storage(format!("an invite has an unknown role '{role}'")))?;
    tx.execute(
        "UPDATE member_invites SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL",
        params![id, audit::format_time(now)],
    )?;
    audit::append(
        tx,
        now,
        NewEvent::new(
            &Actor::member(&member, &name),
            "member.invite_redeemed",
            Decision::Allow,
        )
        .target(Target::new("member", &member, &name))
        .details(json!({"invite": id, "role": role.as_str()})),
    )?;
    Ok(Ok(RedeemedInvite {
        member: MemberId(member),
        member_name: name,
        role,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::clock::ManualClock;
    use crate::secret::MemoryKeychain;
    use std::sync::Arc;

    fn open(dir: &std::path::Path, clock: Arc<ManualClock>) -> Mandate {
        Mandate::open(
            crate::OpenOptions::new(
                dir,
                Arc::new(MemoryKeychain::new()),
                Actor::app("cli", "root"),
            )
            .clock(clock),
        )
        .unwrap()
    }

    #[test]
    fn public_urls_are_https_origins_only() {
        assert_eq!(
            check_public_url("https://mandate.acme.internal:8443/").unwrap(),
            "https://mandate.acme.internal:8443"
        );
        assert!(check_public_url("http://127.0.0.1:8080").is_ok());
        for bad in [
            "http://mandate.acme.internal",
            "https://mandate.acme.internal/path",
            "https://user@mandate.acme.internal",
            "https://mandate.acme.internal?x=1",
            "mandate.acme.internal",
            "ftp://x",
        ] {
            assert!(check_public_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn init_makes_the_admin_and_a_one_time_short_lived_code_stored_only_as_a_hash() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let m = open(dir.path(), clock.clone());
        let t = m
            .init_team(
                "https://mandate.acme.internal:8443",
                "alice",
                None,
                DEFAULT_INVITE_TTL,
            )
            .unwrap();
        assert_eq!(
            m.team_public_url().unwrap().as_deref(),
            Some("https://mandate.acme.internal:8443")
        );
        assert_eq!(t.admin.name.as_str(), "alice");
        let code = t.invite_code.expose().clone();
        assert_eq!(code.len(), 43);
        let db = std::fs::read(dir.path().join(crate::store::DB_FILE)).unwrap();
        let wal = std::fs::read(dir.path().join("mandate.db-wal")).unwrap_or_default();
        for bytes in [&db, &wal] {
            assert!(!bytes.windows(code.len()).any(|w| w == code.as_bytes()));
        }
        // A second init changes nothing.
        let again = m
            .init_team("https://other.example", "bob", None, DEFAULT_INVITE_TTL)
            .unwrap_err();
        assert_eq!(again.code(), crate::ErrorCode::Conflict);
        assert!(m.list_members().unwrap().len() == 1);

        // Wrong code, then the right one once, then again: refused, redeemed, refused.
        assert!(m.redeem_invite(&Sensitive::new("nope".into())).is_err());
        let r = m.redeem_invite(&Sensitive::new(code.clone())).unwrap();
        assert_eq!((r.member_name.as_str(), r.role), ("alice", Role::Admin));
        let e = m.redeem_invite(&Sensitive::new(code.clone())).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::Refused);
        assert!(e.to_string().contains("already used"), "{e}");
        let actions: Vec<String> = m
            .audit_events(None, 20, None)
            .unwrap()
            .into_iter()
            .rev()
            .map(|e| e.action)
            .collect();
        assert_eq!(
            actions,
            vec![
                "issuer.key_created",
                "team.server_initialised",
                "member.added",
                "member.invited",
                "member.invite_refused",
                "member.invite_redeemed",
                "member.invite_refused",
            ]
        );
    }

    #[test]
    fn an_expired_invite_is_refused_and_audited() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let m = open(dir.path(), clock.clone());
        let t = m
            .init_team("https://mandate.test", "alice", None, Duration::minutes(10))
            .unwrap();
        clock.advance(Duration::minutes(11));
        let e = m.redeem_invite(&t.invite_code).unwrap_err();
        assert!(e.to_string().contains("expired"), "{e}");
        assert_eq!(
            m.audit_events(None, 1, None).unwrap()[0].action,
            "member.invite_refused"
        );
    }
}
