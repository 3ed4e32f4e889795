//! People: who is using Mandate on this machine, so that every change names them.
//!
//! A person is a team member. The desktop app asks at first run and remembers the answer per
//! OS login; the CLI takes `--as MEMBER` or `MANDATE_ACTOR`, else the member remembered for the
//! login (`mandate member use NAME`, or the app's choice), else the login name itself, recorded
//! as actor kind `os_user` so that the event says no member was chosen.
//!
//! Where the choice lives: in the data folder's `meta` table, under the key
//! `member_for_os_user:<login>`, with the member's id as the value. The data folder belongs to
//! one installation, and keying by login keeps two people apart when they share one (through
//! `MANDATE_DATA_DIR`); the app and the CLI of one login agree without a second settings file.
//!
//! What it is not: sign-in. It is attribution, not authentication: anyone who can write the
//! data folder can change it, as they can any file there, and `--as` names any member. The OS
//! login remains the security boundary; keys of their own for members belong to the team
//! server.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::Mandate;
use crate::audit::{self, Actor, Decision, NewEvent, Target};
use crate::error::{Error, Result};
use crate::model::{Member, MemberId, MemberName};
use crate::registry::{insert_member, parse_time, validate_email};
use crate::store::{Tx, params};

/// The login name from `USER`, `LOGNAME` or `USERNAME` (in that order, blank values skipped),
/// read through `var`; `None` when there is none.
pub fn os_login(var: impl Fn(&str) -> Option<String>) -> Option<String> {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .filter_map(|k| var(k))
        .map(|v| v.trim().to_owned())
        .find(|v| !v.is_empty() && v.len() <= 256 && !v.chars().any(char::is_control))
}

/// This process's login name: [`os_login`] over the environment, else (on Unix) the name
/// `/etc/passwd` gives the process's user id, else `uid-<n>`. A desktop session always sets
/// `USER`; services, containers and CI often do not.
pub fn current_login() -> Option<String> {
    os_login(|k| std::env::var(k).ok()).or_else(login_from_uid)
}

#[cfg(unix)]
fn login_from_uid() -> Option<String> {
    let uid = rustix::process::getuid().as_raw();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    Some(name_for_uid(&passwd, uid).unwrap_or_else(|| format!("uid-{uid}")))
}

#[cfg(not(unix))]
fn login_from_uid() -> Option<String> {
    None
}

/// The user name of `uid` in `/etc/passwd`-formatted text.
#[cfg_attr(not(unix), allow(dead_code))]
fn name_for_uid(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        (id == uid && !name.is_empty() && !name.starts_with('#')).then(|| name.to_string())
    })
}

/// Who a person says they are: an existing member's name, or a new member's name and email.
#[derive(Debug, Clone)]
pub struct PersonChoice {
    /// The member's name (lowercase handle, e.g. `ann`); made a member if new.
    pub member: String,
    /// Their email address (optional).
    pub email: Option<String>,
}

/// The accountable owner someone typed (the wizard's Issue step): an existing member, or one
/// to add, with their email when an email was typed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct OwnerPlan {
    pub name: MemberName,
    pub email: Option<String>,
    /// The member exists already; otherwise it is added when the agent is created.
    pub exists: bool,
}

/// A member handle made from an email's local part: `Ann.Smith+x@acme.com` → `ann-smith`.
fn handle_from_email(email: &str) -> String {
    let local = email.split('@').next().unwrap_or_default();
    let local = local.split('+').next().unwrap_or_default();
    let mut out = String::new();
    for c in local.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    let out = out.trim_start_matches(|c: char| c.is_ascii_digit() || c == '-');
    out.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

fn meta_key(login: &str) -> String {
    format!("member_for_os_user:{login}")
}

fn member_by_id(conn: &Tx<'_>, id: &str) -> Result<Option<Member>> {
    let row: Option<(String, String, Option<String>, String)> = conn.query_opt(
        "SELECT id, name, email, created_at FROM members WHERE id = ?1",
        params![id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    row.map(|(id, name, email, created)| {
        Ok(Member {
            id: MemberId(id),
            name: MemberName::from_db(name),
            email,
            created_at: parse_time(&created)?,
        })
    })
    .transpose()
}

fn member_by_name(conn: &Tx<'_>, name: &str) -> Result<Option<Member>> {
    let id: Option<String> = conn.query_opt(
        "SELECT id FROM members WHERE name = ?1",
        params![name],
        |r| r.get(0),
    )?;
    match id {
        Some(id) => member_by_id(conn, &id),
        None => Ok(None),
    }
}

/// Remember `member` for `login` and record it, unless it is already the one remembered.
fn remember(tx: &Tx<'_>, login: &str, member: &Member, now: DateTime<Utc>) -> Result<()> {
    let key = meta_key(login);
    let before: Option<String> = tx.query_opt(
        "SELECT value FROM meta WHERE key = ?1",
        params![&key],
        |r| r.get(0),
    )?;
    if before.as_deref() == Some(member.id.as_str()) {
        return Ok(());
    }
    let previous = match &before {
        Some(id) => member_by_id(tx, id)?.map(|m| m.name.to_string()),
        None => None,
    };
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![&key, member.id.as_str()],
    )?;
    // The person at the keyboard says who they are: the event is theirs.
    audit::append(
        tx,
        now,
        NewEvent::new(
            &Actor::member(member.id.as_str(), member.name.as_str()),
            "person.chosen",
            Decision::Allow,
        )
        .target(Target::new(
            "member",
            member.id.as_str(),
            member.name.as_str(),
        ))
        .details(json!({"os_user": login, "previous": previous})),
    )?;
    Ok(())
}

impl Mandate {
    /// The member remembered for the OS login `login`, if any (and if they still exist).
    pub fn remembered_member(&self, login: &str) -> Result<Option<Member>> {
        self.read(|tx| {
            let id: Option<String> = tx.query_opt(
                "SELECT value FROM meta WHERE key = ?1",
                params![&meta_key(login)],
                |r| r.get(0),
            )?;
            match id {
                Some(id) => member_by_id(tx, &id),
                None => Ok(None),
            }
        })
    }

    /// The person at `login` says who they are: an existing member, or a new one (added with
    /// the email given). Remembered for the login (`person.chosen`, by that member), and later
    /// changes through this handle are theirs. One transaction: a refused choice changes
    /// nothing.
    ///
    /// An email for an existing member must be theirs; a member without one gets it
    /// (`member.edited`).
    pub fn choose_person(&self, login: &str, choice: &PersonChoice) -> Result<Member> {
        let login = login.trim();
        if login.is_empty() || login.chars().any(char::is_control) {
            return Err(Error::invalid(
                "the OS login name is unknown, so the choice cannot be remembered; set USER to \
                 your login name",
            ));
        }
        let name = MemberName::parse(&choice.member)?;
        let email = validate_email(choice.email.as_deref())?;
        let member = self.write(|tx, now| {
            let member = match member_by_name(tx, name.as_str())? {
                Some(m) => match (&m.email, &email) {
                    (Some(have), Some(given)) if !have.eq_ignore_ascii_case(given) => {
                        return Err(Error::Conflict(format!(
                            "the team member '{}' is already registered with the email \
                                 {have}; leave the email as it is to be them, or choose \
                                 another name",
                            m.name
                        )));
                    }
                    (None, Some(given)) => {
                        tx.execute(
                            "UPDATE members SET email = ?2 WHERE id = ?1",
                            params![m.id.as_str(), given],
                        )?;
                        audit::append(
                            tx,
                            now,
                            NewEvent::new(
                                &Actor::member(m.id.as_str(), m.name.as_str()),
                                "member.edited",
                                Decision::Allow,
                            )
                            .target(Target::new("member", m.id.as_str(), m.name.as_str()))
                            .details(json!({"email": given})),
                        )?;
                        Member {
                            email: Some(given.clone()),
                            ..m
                        }
                    }
                    _ => m,
                },
                None => {
                    let m = Member {
                        id: MemberId::generate(),
                        name: name.clone(),
                        email: email.clone(),
                        created_at: now,
                    };
                    // A person adding themselves: the new member is the actor.
                    let me = Actor::member(m.id.as_str(), m.name.as_str());
                    insert_member(tx, &m, &me, now)?;
                    m
                }
            };
            remember(tx, login, &member, now)?;
            Ok(member)
        })?;
        self.set_actor(Actor::member(member.id.as_str(), member.name.as_str()));
        Ok(member)
    }

    /// What `typed` (a member's name, or an email) means as an agent's owner: an existing
    /// member (by name, or by email), or a new member named after the email's local part and
    /// keeping the email. Reads only; refused input says how to fix it.
    pub fn plan_owner(&self, typed: &str) -> Result<OwnerPlan> {
        let typed = typed.trim();
        if typed.is_empty() {
            return Err(Error::invalid(
                "name the team member who answers for this agent (a name such as 'ann', or an \
                 email address)",
            ));
        }
        let members = self.list_members()?;
        if !typed.contains('@') {
            let name = MemberName::parse(typed)?;
            let existing = members.iter().find(|m| m.name == name);
            if existing.is_none() {
                self.check_name_not_an_agent(&name)?;
            }
            return Ok(OwnerPlan {
                email: existing.and_then(|m| m.email.clone()),
                exists: existing.is_some(),
                name,
            });
        }
        let email = validate_email(Some(typed))?.unwrap_or_default();
        if let Some(m) = members.iter().find(|m| {
            m.email
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case(&email))
        }) {
            return Ok(OwnerPlan {
                name: m.name.clone(),
                email: m.email.clone(),
                exists: true,
            });
        }
        let handle = handle_from_email(&email);
        let name = MemberName::parse(&handle).map_err(|_| {
            Error::invalid(format!(
                "no member name can be made from {email}; type a name for this person (for \
                 example 'ann') and add their email later"
            ))
        })?;
        if let Some(m) = members.iter().find(|m| m.name == name) {
            return Err(Error::Conflict(format!(
                "the team member '{}' already exists{}, so {email} cannot become '{}'; type \
                 '{}' to choose them, or a different name for this person",
                m.name,
                m.email
                    .as_deref()
                    .map(|e| format!(" with the email {e}"))
                    .unwrap_or_default(),
                name,
                m.name
            )));
        }
        self.check_name_not_an_agent(&name)?;
        Ok(OwnerPlan {
            name,
            email: Some(email),
            exists: false,
        })
    }

    /// The owner `typed` means (see [`Mandate::plan_owner`]), added as a member (by the person
    /// making the change) when new.
    pub fn ensure_owner(&self, typed: &str) -> Result<Member> {
        let plan = self.plan_owner(typed)?;
        if plan.exists {
            return self
                .read(|tx| member_by_name(tx, plan.name.as_str()))?
                .ok_or_else(|| Error::not_found("team member", plan.name.as_str()));
        }
        self.add_member(plan.name.as_str(), plan.email.as_deref())
    }

    fn check_name_not_an_agent(&self, name: &MemberName) -> Result<()> {
        if self.get_agent(name.as_str()).is_ok() {
            return Err(Error::Conflict(format!(
                "'{name}' is already an agent's name; a person and an agent must never share an \
                 identifier, choose another name"
            )));
        }
        Ok(())
    }

    /// Remember the existing member `member` (name or id) for `login` (`mandate member use`),
    /// without changing who this handle's changes are attributed to.
    pub fn remember_member(&self, login: &str, member: &str) -> Result<Member> {
        let login = login.trim();
        if login.is_empty() {
            return Err(Error::invalid(
                "the OS login name is unknown, so the choice cannot be remembered; set USER to \
                 your login name",
            ));
        }
        let target = self.member_actor(member)?;
        self.write(|tx, now| {
            let m = member_by_id(tx, &target.id)?
                .ok_or_else(|| Error::not_found("team member", member))?;
            remember(tx, login, &m, now)?;
            Ok(m)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{OpenOptions, secret::MemoryKeychain};

    fn unattributed(dir: &std::path::Path) -> Mandate {
        Mandate::open(OpenOptions::without_person(
            dir,
            Arc::new(MemoryKeychain::new()),
        ))
        .unwrap()
    }

    fn actors(m: &Mandate) -> Vec<(String, String, String)> {
        m.audit_events(None, 100, None)
            .unwrap()
            .into_iter()
            .rev()
            .map(|e| (e.actor.kind, e.actor.name, e.action))
            .collect()
    }

    #[test]
    fn os_login_takes_the_first_non_blank_name() {
        let login = os_login(|k| match k {
            "USER" => Some(" ".into()),
            "LOGNAME" => Some("ann".into()),
            _ => None,
        });
        assert_eq!(login.as_deref(), Some("ann"));
        assert_eq!(os_login(|_| None), None);
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\n# comment\nann:x:1000:1000::/home/ann:/bin/sh\n";
        assert_eq!(name_for_uid(passwd, 1000).as_deref(), Some("ann"));
        assert_eq!(name_for_uid(passwd, 0).as_deref(), Some("root"));
        assert_eq!(name_for_uid(passwd, 7), None);
        assert!(current_login().is_some_and(|l| !l.is_empty()));
    }

    #[test]
    fn until_a_person_is_chosen_no_change_is_made_in_nobodys_name() {
        let dir = tempfile::tempdir().unwrap();
        let m = unattributed(dir.path());
        let e = m.add_member("ann", None).unwrap_err();
        assert!(e.to_string().contains("say who is using Mandate"), "{e}");
        assert!(m.list_members().unwrap().is_empty());
        assert!(m.audit_events(None, 10, None).unwrap().is_empty());
    }

    #[test]
    fn choosing_a_new_person_adds_them_and_attributes_later_changes_to_them() {
        let dir = tempfile::tempdir().unwrap();
        let m = unattributed(dir.path());
        let ann = m
            .choose_person(
                "ann",
                &PersonChoice {
                    member: "ann".into(),
                    email: Some("ann@example.com".into()),
                },
            )
            .unwrap();
        assert_eq!(ann.email.as_deref(), Some("ann@example.com"));
        m.add_member("bob", None).unwrap();
        assert_eq!(
            actors(&m),
            [
                ("member".into(), "ann".into(), "member.added".into()),
                ("member".into(), "ann".into(), "person.chosen".into()),
                ("member".into(), "ann".into(), "member.added".into()),
            ]
        );
        // Remembered for the login, and for no other.
        assert_eq!(
            m.remembered_member("ann").unwrap().unwrap().name.as_str(),
            "ann"
        );
        assert!(m.remembered_member("bob").unwrap().is_none());
        let again = unattributed(dir.path());
        assert_eq!(again.remembered_member("ann").unwrap().unwrap().id, ann.id);
    }

    #[test]
    fn a_refused_choice_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let m = unattributed(dir.path());
        m.choose_person(
            "ann",
            &PersonChoice {
                member: "ann".into(),
                email: Some("ann@example.com".into()),
            },
        )
        .unwrap();
        let before = m.audit_events(None, 100, None).unwrap().len();
        for (name, email) in [
            ("Ann Smith", None),
            ("bob", Some("not an email")),
            ("ann", Some("someone-else@example.com")),
        ] {
            let e = m
                .choose_person(
                    "bob",
                    &PersonChoice {
                        member: name.into(),
                        email: email.map(String::from),
                    },
                )
                .unwrap_err();
            assert!(!e.to_string().is_empty());
        }
        assert_eq!(m.audit_events(None, 100, None).unwrap().len(), before);
        assert!(m.remembered_member("bob").unwrap().is_none());
        assert_eq!(m.list_members().unwrap().len(), 1);
    }

    #[test]
    fn choosing_an_existing_member_again_records_only_a_change_of_person() {
        let dir = tempfile::tempdir().unwrap();
        let m = unattributed(dir.path());
        let pick = |who: &str| PersonChoice {
            member: who.into(),
            email: None,
        };
        m.choose_person("ann", &pick("ann")).unwrap();
        m.choose_person("ann", &pick("ann")).unwrap();
        m.add_member("bob", None).unwrap();
        m.choose_person("ann", &pick("bob")).unwrap();
        let evs = m.audit_events(None, 100, None).unwrap();
        let chosen: Vec<_> = evs
            .iter()
            .filter(|e| e.action == "person.chosen")
            .map(|e| (e.actor.name.clone(), e.details["previous"].clone()))
            .collect();
        assert_eq!(
            chosen,
            [
                ("bob".to_string(), json!("ann")),
                ("ann".to_string(), serde_json::Value::Null)
            ]
        );
        assert_eq!(m.actor().unwrap().name, "bob");
    }

    #[test]
    fn an_owner_typed_as_an_email_becomes_a_member_with_that_email() {
        crate::store::testing::each_store(|s| {
            let m = s.open();
            m.add_member("bob", Some("bob@example.com")).unwrap();
            let plan = m.plan_owner("  Ann.Smith+agents@Example.com ").unwrap();
            assert_eq!(
                (plan.name.as_str(), plan.email.as_deref(), plan.exists),
                ("ann-smith", Some("Ann.Smith+agents@Example.com"), false)
            );
            // By name or by email, an existing member is theirs.
            assert!(m.plan_owner("bob").unwrap().exists);
            let by_mail = m.plan_owner("BOB@example.com").unwrap();
            assert_eq!((by_mail.name.as_str(), by_mail.exists), ("bob", true));
            // Nothing was written by planning.
            assert_eq!(m.list_members().unwrap().len(), 1);
            let ann = m.ensure_owner("ann.smith@example.com").unwrap();
            assert_eq!(ann.email.as_deref(), Some("ann.smith@example.com"));
            assert_eq!(m.ensure_owner("ann-smith").unwrap().id, ann.id);
            // What cannot be an owner says how to fix it.
            for (typed, says) in [
                ("", "name the team member"),
                ("Ann Smith", "not a valid member name"),
                (
                    "bob@elsewhere.org",
                    "already exists with the email bob@example.com",
                ),
                ("ann@", "not an email address"),
                ("42@example.com", "no member name can be made"),
            ] {
                let e = m.plan_owner(typed).unwrap_err().to_string();
                assert!(e.contains(says), "{typed:?}: {e}");
            }
        });
    }

    #[test]
    fn automatic_work_before_anyone_is_chosen_is_labelled_as_mandates_own() {
        let dir = tempfile::tempdir().unwrap();
        let m = unattributed(dir.path());
        m.issuer_key().unwrap();
        let e = &m.audit_events(None, 1, None).unwrap()[0];
        assert_eq!(e.action, "issuer.key_created");
        assert_eq!(e.actor.kind, "system");
        assert_eq!(
            e.actor.describe(),
            "Mandate (issuer key made at the first start)"
        );
    }
}
