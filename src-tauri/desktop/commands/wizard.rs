//! The migration wizard's commands: scan a project folder, move a found credential into the
//! keychain, create the agent with its connections in one step, and get it a real test token.
//!
//! The scan returns masked findings only. Moving names a finding by place (file, line,
//! column, kind) and the core re-reads the file itself, so the secret never crosses IPC. The
//! test token is a Mandate access token obtained from the running endpoint exactly as an
//! agent would get one (a signed client assertion over HTTP), so it is checked and audited
//! like any other; it is returned to the window so the person can see its claims and try it.

use mandate_core::migrate::{
    MoveChoices, MoveFinding, MovePlan, MovedCredential, OpenMove, UndoneMove,
};
use mandate_core::model::{Agent, AgentName};
use mandate_core::people::OwnerPlan;
use mandate_core::scan::{Finding, FindingRef, ScanReport, Scanner};
use mandate_core::{Error, ErrorCode, ErrorReport, KeyChoice, NewAgent};
use serde::{Deserialize, Serialize};
use tauri::{AppHandle, State};
use tauri_plugin_dialog::DialogExt;

use super::blocking;
use crate::AppState;
use crate::endpoint::EndpointState;

/// Ask for the agent's project folder with the native folder dialog; null when cancelled.
#[tauri::command]
#[specta::specta]
pub async fn pick_folder(app: AppHandle) -> Option<String> {
    tauri::async_runtime::spawn_blocking(move || {
        app.dialog()
            .file()
            .set_title("Choose the agent's project folder")
            .blocking_pick_folder()
            .and_then(|p| p.into_path().ok())
            .map(|p| p.display().to_string())
    })
    .await
    .ok()
    .flatten()
}

/// Scan the agent's project folder for credentials in known formats (masked values only).
#[tauri::command]
#[specta::specta]
pub async fn scan_folder(
    state: State<'_, AppState>,
    path: String,
) -> Result<ScanReport, ErrorReport> {
    blocking(&state, move |_| {
        let path = path.trim();
        if path.is_empty() {
            return Err(Error::Invalid(
                "choose the agent's project folder first (Choose folder…, or type its path)".into(),
            ));
        }
        Scanner::new(path)?.scan()
    })
    .await
}

/// For each finding, the connections of its kind it may go into and the default choice
/// (none when Mandate cannot tell what the credential is for).
#[tauri::command]
#[specta::specta]
pub async fn move_choices(
    state: State<'_, AppState>,
    findings: Vec<Finding>,
) -> Result<Vec<MoveChoices>, ErrorReport> {
    blocking(&state, move |m| {
        findings.iter().map(|f| m.move_choices(f)).collect()
    })
    .await
}

/// What moving a finding into `connection` would do, for the confirmation: both credentials
/// masked and the agents that use the connection. Changes nothing.
#[tauri::command]
#[specta::specta]
pub async fn plan_move(
    state: State<'_, AppState>,
    root: String,
    finding: FindingRef,
    connection: String,
) -> Result<MovePlan, ErrorReport> {
    blocking(&state, move |m| {
        m.plan_move(&MoveFinding {
            root: std::path::Path::new(&root),
            finding: &finding,
            connection: &connection,
            rewrite_for_agent: None,
            replace: false,
        })
    })
    .await
}

/// Move one finding's credential into the OS keychain as `connection`'s secret; with
/// `rewrite_for_agent`, also replace its line with a comment pointing at `mandate exec`.
/// `replace` is the person's answer to the confirmation when the connection holds a
/// credential; without it such a move is refused.
#[tauri::command]
#[specta::specta]
pub async fn move_finding(
    state: State<'_, AppState>,
    root: String,
    finding: FindingRef,
    connection: String,
    rewrite_for_agent: Option<String>,
    replace: bool,
) -> Result<MovedCredential, ErrorReport> {
    blocking(&state, move |m| {
        m.move_finding(MoveFinding {
            root: std::path::Path::new(&root),
            finding: &finding,
            connection: &connection,
            rewrite_for_agent: rewrite_for_agent.as_deref(),
            replace,
        })
    })
    .await
}

/// Undo a move: the line comes back into its file, the connection gets back the credential
/// it held before.
#[tauri::command]
#[specta::specta]
pub async fn undo_move(
    state: State<'_, AppState>,
    move_id: String,
) -> Result<UndoneMove, ErrorReport> {
    blocking(&state, move |m| m.undo_move(&move_id)).await
}

/// The moves that can still be undone, newest first.
#[tauri::command]
#[specta::specta]
pub async fn open_moves(state: State<'_, AppState>) -> Result<Vec<OpenMove>, ErrorReport> {
    blocking(&state, |m| m.open_moves()).await
}

/// The connection presets (GitHub, Slack, ...): base URL, credential placement, actions.
#[tauri::command]
#[specta::specta]
pub fn list_presets() -> Vec<mandate_core::broker::presets::PresetView> {
    mandate_core::broker::presets::PRESETS
        .iter()
        .map(|p| p.view())
        .collect()
}

/// What the owner typed on the Issue step means (an existing member, or one to add with the
/// email typed), checked on that step so a mistake is shown there, not at Create.
#[tauri::command]
#[specta::specta]
pub async fn check_owner(
    state: State<'_, AppState>,
    owner: String,
) -> Result<OwnerPlan, ErrorReport> {
    blocking(&state, move |m| m.plan_owner(&owner)).await
}

/// A connection the wizard makes before it creates the agent.
#[derive(Debug, Clone, Deserialize, specta::Type)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WizardConnection {
    /// From a preset (`github`, `openai`...).
    Preset { name: String, preset: String },
    /// A database connection, its URL handed to the program in `variable`.
    Database {
        name: String,
        variable: Option<String>,
    },
}

impl WizardConnection {
    fn name(&self) -> &str {
        match self {
            WizardConnection::Preset { name, .. } | WizardConnection::Database { name, .. } => name,
        }
    }
}

/// How the agent proves who it is.
#[derive(Debug, Clone, Deserialize, specta::Type)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WizardKey {
    /// Generate a key pair here; the private key stays in the OS keychain (local agents).
    Generate,
    /// The agent's own public key (JWK, PEM or OpenSSH), for agents that run elsewhere.
    PublicKey { public_key: String },
}

/// Everything the wizard's Issue, Scope and Rotate steps decided.
#[derive(Debug, Clone, Deserialize, specta::Type)]
pub struct WizardAgentInput {
    pub name: String,
    pub purpose: String,
    /// The accountable team member, by name or email; added as a member when new (with the
    /// email when one was typed).
    pub owner: String,
    pub parent: Option<String>,
    pub scopes: Vec<String>,
    /// Connections to create first (those that do not exist yet).
    pub new_connections: Vec<WizardConnection>,
    /// The longest token lifetime, in seconds (1 s to 24 h).
    pub max_ttl_secs: u32,
    pub key: WizardKey,
}

/// Create the agent, with its owner and any preset connections it needs, as one step: when
/// the agent cannot be created, the connections made for it are removed again.
#[tauri::command]
#[specta::specta]
pub async fn create_wizard_agent(
    state: State<'_, AppState>,
    input: WizardAgentInput,
) -> Result<Agent, ErrorReport> {
    blocking(&state, move |m| create(m, input)).await
}

/// What [`create_wizard_agent`] does, without Tauri (tested below).
fn create(m: &mandate_core::Mandate, input: WizardAgentInput) -> mandate_core::Result<Agent> {
    // The checks that need no writes come first, so a typo changes nothing.
    let name = AgentName::parse(&input.name)?;
    match m.get_agent(name.as_str()) {
        Ok(_) => {
            return Err(Error::AlreadyExists {
                kind: "agent",
                name: name.as_str().to_string(),
            });
        }
        Err(Error::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    let owner = m.ensure_owner(&input.owner)?.name.to_string();
    let mut created = Vec::new();
    for c in &input.new_connections {
        match m.get_connection(c.name()) {
            Ok(_) => continue,
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(undo(m, &created, e)),
        }
        let made = match c {
            WizardConnection::Preset { name, preset } => m.add_preset_connection(name, preset),
            WizardConnection::Database { name, variable } => {
                m.add_database_connection(name, variable.as_deref(), None)
            }
        };
        match made {
            Ok(_) => created.push(c.name().to_string()),
            Err(e) => return Err(undo(m, &created, e)),
        }
    }
    let key = match input.key {
        WizardKey::Generate => KeyChoice::GenerateInKeychain,
        WizardKey::PublicKey { public_key } => KeyChoice::Register { public_key },
    };
    m.add_agent_with_ttl(
        NewAgent {
            name: name.as_str().to_string(),
            purpose: input.purpose,
            owner,
            parent: input.parent.filter(|p| !p.trim().is_empty()),
            scopes: input.scopes,
            key,
        },
        Some(input.max_ttl_secs),
    )
    .map_err(|e| undo(m, &created, e))
}

/// Remove the connections this call created, then hand back the error that stopped it.
fn undo(m: &mandate_core::Mandate, created: &[String], e: Error) -> Error {
    for name in created {
        if let Err(u) = m.remove_connection(name) {
            tracing::warn!(connection = %name, error = %u, "could not remove a connection the wizard made");
        }
    }
    e
}

/// The wizard's proof: a real token from the running endpoint, and what it says.
#[derive(Debug, Clone, Serialize, specta::Type)]
pub struct TestToken {
    /// The compact JWT, for trying it (it expires with `expires_in`).
    pub access_token: String,
    pub expires_in: u32,
    pub scope: Option<String>,
    /// The decoded JOSE header (`alg`, `kid`, `typ`).
    #[specta(type = specta_typescript::Unknown)]
    pub header: serde_json::Value,
    /// The decoded claims (`iss`, `sub`, `aud`, `scope`, `exp`, `jti`...).
    #[specta(type = specta_typescript::Unknown)]
    pub claims: serde_json::Value,
}

/// Get `agent` a token from the running endpoint with its key from the keychain, as
/// `mandate token` does.
#[tauri::command]
#[specta::specta]
pub async fn wizard_test_token(
    state: State<'_, AppState>,
    agent: String,
) -> Result<TestToken, ErrorReport> {
    let status = state.endpoint.status();
    if status.state != EndpointState::Running {
        return Err(ErrorReport {
            code: ErrorCode::Conflict,
            message: status.message.unwrap_or_else(|| {
                "the token endpoint is not running; start it in Settings, then try again".into()
            }),
        });
    }
    let (port, tls) = (status.port, status.tls);
    let (kid, key, now, cert) = blocking(&state, move |m| {
        let (kid, key) = m.client_signing_key(&agent)?;
        // An HTTPS endpoint (a `mandate serve --tls` the app attached to): trust exactly the
        // data folder's certificate.
        let cert = if tls {
            Some(
                std::fs::read(m.tls_cert_path()).map_err(|e| mandate_core::Error::Io {
                    action: "could not read the endpoint's certificate",
                    path: m.tls_cert_path(),
                    reason: e.to_string(),
                })?,
            )
        } else {
            None
        };
        Ok((kid, key, (agent, m.now().timestamp()), cert))
    })
    .await?;
    let (agent, now) = now;
    let addr = match cert {
        None => mandate_server::client::EndpointAddr::http(port),
        Some(pem) => {
            mandate_server::client::EndpointAddr::https(port, &pem).map_err(|e| ErrorReport {
                code: ErrorCode::Conflict,
                message: format!("the endpoint's certificate cannot be used: {e}"),
            })?
        }
    };
    let report = |e: mandate_server::client::ClientError| ErrorReport {
        code: if e.exit_code() == 9 {
            ErrorCode::Refused
        } else {
            ErrorCode::Conflict
        },
        message: e.to_string(),
    };
    let m = super::mandate(&state)?;
    let res = mandate_server::client::request_token(
        &m,
        &addr,
        &mandate_server::client::TokenRequest {
            agent: &agent,
            kid: &kid,
            key: &key,
            scopes: &[],
            resource: None,
            now,
        },
    )
    .await
    .map_err(report)?;
    let (header, claims) = decode(&res.access_token).ok_or_else(|| ErrorReport {
        code: ErrorCode::Storage,
        message: "the endpoint answered with a token that is not a JWT".into(),
    })?;
    Ok(TestToken {
        expires_in: u32::try_from(res.expires_in).unwrap_or(u32::MAX),
        scope: res.scope,
        access_token: res.access_token,
        header,
        claims,
    })
}

/// The header and claims of a compact JWS, read with the core's strict JWS parser (no
/// signature check: the endpoint just made it; the window only shows what it says).
fn decode(jwt: &str) -> Option<(serde_json::Value, serde_json::Value)> {
    let j = mandate_core::oauth::jws::parse(jwt).ok()?;
    Some((j.header.into(), j.claims.into()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mandate_core::audit::Actor;
    use mandate_core::secret::MemoryKeychain;
    use mandate_core::{Mandate, OpenOptions};

    use super::*;

    fn open(dir: &std::path::Path) -> Mandate {
        Mandate::open(OpenOptions::new(
            dir,
            Arc::new(MemoryKeychain::new()),
            Actor::app("test", "t"),
        ))
        .unwrap()
    }

    fn input(name: &str, key: WizardKey) -> WizardAgentInput {
        WizardAgentInput {
            name: name.into(),
            purpose: "monthly billing report".into(),
            owner: "founder".into(),
            parent: None,
            scopes: vec!["github:repo.read".into(), "warehouse:connect".into()],
            new_connections: vec![
                WizardConnection::Preset {
                    name: "github".into(),
                    preset: "github".into(),
                },
                WizardConnection::Database {
                    name: "warehouse".into(),
                    variable: Some("WAREHOUSE_URL".into()),
                },
            ],
            max_ttl_secs: 600,
            key,
        }
    }

    #[test]
    fn creates_the_owner_the_preset_connection_and_the_agent_in_one_step() {
        let d = tempfile::tempdir().unwrap();
        let m = open(d.path());
        let a = create(&m, input("billing-report-agent", WizardKey::Generate)).unwrap();
        assert_eq!(a.owner.as_ref().map(|o| o.as_str()), Some("founder"));
        assert_eq!(a.max_token_ttl_secs, Some(600));
        assert_eq!(a.keys.len(), 1);
        let c = m.get_connection("github").unwrap();
        assert_eq!(c.base_url, "https://api.github.com");
        assert_eq!(
            m.broker_config("github").unwrap().preset.as_deref(),
            Some("github")
        );
        let w = m.get_connection("warehouse").unwrap();
        assert_eq!(w.kind, mandate_core::model::ConnectionKind::Database);
        assert_eq!(w.variable.as_deref(), Some("WAREHOUSE_URL"));
        assert!(a.scopes.iter().any(|s| s.as_str() == "warehouse:connect"));
    }

    /// The Issue step took an email as the owner and Create failed two steps later.
    #[test]
    fn an_owner_typed_as_an_email_becomes_a_member_with_that_email() {
        let d = tempfile::tempdir().unwrap();
        let m = open(d.path());
        let mut i = input("billing-report-agent", WizardKey::Generate);
        i.owner = "Ann.Smith@example.com".into();
        let a = create(&m, i).unwrap();
        assert_eq!(a.owner.as_ref().map(|o| o.as_str()), Some("ann-smith"));
        let ann = m.list_members().unwrap().remove(0);
        assert_eq!(ann.email.as_deref(), Some("Ann.Smith@example.com"));
        // A bad owner is refused before anything is written.
        let mut i = input("second-agent", WizardKey::Generate);
        i.owner = "Ann Smith".into();
        assert!(create(&m, i).is_err());
        assert_eq!(m.list_agents().unwrap().len(), 1);
    }

    #[test]
    fn a_refused_agent_leaves_no_connection_behind() {
        let d = tempfile::tempdir().unwrap();
        let m = open(d.path());
        // A public key that is not a key: the agent is refused after the connection was made.
        let e = create(
            &m,
            input(
                "billing-report-agent",
                WizardKey::PublicKey {
                    public_key: "not a key".into(),
                },
            ),
        )
        .unwrap_err();
        assert!(matches!(e, mandate_core::Error::Invalid(_)), "{e}");
        assert!(
            m.list_connections().unwrap().is_empty(),
            "the connection was undone"
        );
        assert!(m.list_agents().unwrap().is_empty());
        // A bad name or a taken one is refused before anything is written.
        assert!(create(&m, input("Bad Name", WizardKey::Generate)).is_err());
        assert!(m.list_connections().unwrap().is_empty());
        create(&m, input("billing-report-agent", WizardKey::Generate)).unwrap();
        let e = create(&m, input("billing-report-agent", WizardKey::Generate)).unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
    }

    #[test]
    fn a_pasted_public_key_registers_the_agent_without_a_keychain_key() {
        let d = tempfile::tempdir().unwrap();
        let m = open(d.path());
        let key = mandate_core::keys::generate();
        let jwk = mandate_core::keys::public_jwk(&key.verifying_key());
        let a = create(
            &m,
            input(
                "remote-agent",
                WizardKey::PublicKey {
                    public_key: jwk.to_string(),
                },
            ),
        )
        .unwrap();
        assert_eq!(a.keys.len(), 1);
        assert_eq!(a.keys[0].origin, mandate_core::model::KeyOrigin::Registered);
        assert!(
            m.agent_signing_key("remote-agent").is_err(),
            "no private key here"
        );
    }

    #[test]
    fn decodes_a_compact_jws_and_refuses_garbage() {
        let token = mandate_core::oauth::jws::sign(
            &serde_json::json!({"alg": "EdDSA", "typ": "at+jwt"}),
            &serde_json::json!({"sub": "bot"}),
            &mandate_core::keys::generate(),
        );
        let (h, c) = decode(&token).unwrap();
        assert_eq!(h["alg"], "EdDSA");
        assert_eq!(c["sub"], "bot");
        assert!(decode("not-a-jwt").is_none());
        assert!(decode("e30.!!!.x").is_none());
    }
}
