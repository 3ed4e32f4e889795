//! Presets for common connections: base URL, where the credential goes, named actions
//! (read-only ones first, so granting the first few is safe), which of them are essential
//! and what they cost, and the environment variables the vendor's SDK reads so that
//! `mandate exec` can point an unmodified program at the proxy.
//!
//! A preset only fills in `mandate connection add`; everything it sets can be changed on the
//! command line at creation (`--base-url`, `--action`, `--auth`) and afterwards with
//! `mandate connection edit`. Nothing refers back to the preset later except its name, which
//! `mandate exec` uses to pick the SDK variables.
//!
//! What it is not: a claim about each vendor's full API. The actions are a small, safe
//! starting set.

use serde::Serialize;

use super::auth::CredentialPlacement;
use super::config::BrokerSetup;
use crate::Mandate;
use crate::error::{Error, Result};
use crate::model::Connection;
use crate::registry::NewConnection;

/// A preset's action: `NAME=METHOD:PATH`, its cost in budget units, whether it stays
/// allowed after 90 % of the daily budget is used, whether the wizard ticks it by default,
/// and a real request of the vendor's API that it covers (for copy-ready examples).
#[derive(Debug, Clone, Copy)]
pub struct PresetAction {
    pub spec: &'static str,
    pub cost: u32,
    pub essential: bool,
    /// Ticked by default in the wizard: only narrow reads of non-sensitive data (the token's
    /// own account, the list of models). Reads of private content (repositories, messages,
    /// payments) are the person's explicit choice.
    pub default: bool,
    /// A path (and query) of a real endpoint this action covers, e.g. `/user`.
    pub example: Option<&'static str>,
}

/// A connection template.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    pub name: &'static str,
    pub base_url: &'static str,
    /// `bearer`, `basic`, `header:NAME`, `query:NAME`.
    pub auth: &'static str,
    pub actions: &'static [PresetAction],
    /// Variables the vendor SDK reads for its base URL; `mandate exec` sets them to the
    /// proxy URL.
    pub url_vars: &'static [&'static str],
    /// Variables the vendor SDK reads for its API key; `mandate exec` sets them to the Mandate
    /// token (which the proxy exchanges for the real key), never to the real key.
    pub token_vars: &'static [&'static str],
    /// Variables the SDK would read a real key from; `mandate exec` removes them.
    pub scrub_vars: &'static [&'static str],
}

const fn a(spec: &'static str, cost: u32, essential: bool) -> PresetAction {
    PresetAction {
        spec,
        cost,
        essential,
        default: false,
        example: None,
    }
}

impl PresetAction {
    /// Ticked by default in the wizard (see [`PresetAction::default`]).
    const fn by_default(mut self) -> Self {
        self.default = true;
        self
    }

    const fn try_at(mut self, path: &'static str) -> Self {
        self.example = Some(path);
        self
    }

    /// The action's name (`repo.read`).
    pub fn name(&self) -> &'static str {
        self.spec.split_once('=').map_or(self.spec, |(n, _)| n)
    }
}

/// Every preset, by name.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "github",
        base_url: "https://api.github.com",
        auth: "bearer",
        actions: &[
            a("repo.read=GET:/repos/**", 1, true).try_at("/repos/octocat/Hello-World"),
            a("user.read=GET:/user", 1, true)
                .by_default()
                .try_at("/user"),
            a("search.read=GET:/search/**", 1, false).try_at("/search/repositories?q=mandate"),
            a("issues.write=POST:/repos/*/*/issues", 1, false),
            a("comments.write=POST:/repos/*/*/issues/*/comments", 1, false),
        ],
        url_vars: &["GITHUB_API_URL"],
        token_vars: &["GITHUB_TOKEN", "GH_TOKEN"],
        scrub_vars: &["GH_ENTERPRISE_TOKEN", "GITHUB_ENTERPRISE_TOKEN"],
    },
    Preset {
        name: "slack",
        base_url: "https://slack.com/api",
        auth: "bearer",
        actions: &[
            a("conversations.read=GET:/conversations.list", 1, true)
                .by_default()
                .try_at("/conversations.list"),
            a("history.read=GET:/conversations.history", 1, true),
            a("users.read=GET:/users.list", 1, false).try_at("/users.list"),
            a("chat.write=POST:/chat.postMessage", 1, false),
        ],
        url_vars: &["SLACK_API_URL"],
        token_vars: &["SLACK_BOT_TOKEN", "SLACK_TOKEN"],
        scrub_vars: &[],
    },
    Preset {
        name: "stripe",
        base_url: "https://api.stripe.com",
        auth: "bearer",
        actions: &[
            a("balance.read=GET:/v1/balance", 1, true).try_at("/v1/balance"),
            a("charges.read=GET:/v1/charges/**", 1, true).try_at("/v1/charges"),
            a("invoices.read=GET:/v1/invoices/**", 1, true).try_at("/v1/invoices"),
            a("customers.read=GET:/v1/customers/**", 1, false).try_at("/v1/customers"),
            a("refunds.write=POST:/v1/refunds", 5, false),
        ],
        url_vars: &["STRIPE_API_BASE"],
        token_vars: &["STRIPE_API_KEY"],
        scrub_vars: &["STRIPE_SECRET_KEY"],
    },
    Preset {
        name: "openai",
        base_url: "https://api.openai.com/v1",
        auth: "bearer",
        actions: &[
            a("models.read=GET:/models/**", 1, true)
                .by_default()
                .try_at("/models"),
            a("chat=POST:/chat/completions", 10, false),
            a("responses=POST:/responses", 10, false),
            a("embeddings=POST:/embeddings", 2, false),
        ],
        url_vars: &["OPENAI_BASE_URL"],
        token_vars: &["OPENAI_API_KEY"],
        scrub_vars: &[],
    },
    Preset {
        name: "anthropic",
        base_url: "https://api.anthropic.com",
        auth: "header:x-api-key",
        actions: &[
            a("models.read=GET:/v1/models/**", 1, true)
                .by_default()
                .try_at("/v1/models"),
            a("messages=POST:/v1/messages", 10, false),
            a("tokens.count=POST:/v1/messages/count_tokens", 1, false),
        ],
        url_vars: &["ANTHROPIC_BASE_URL"],
        // The SDK sends ANTHROPIC_AUTH_TOKEN as `Authorization: Bearer`, which is where the
        // proxy reads the Mandate token; the proxy then adds the real `x-api-key`.
        token_vars: &["ANTHROPIC_AUTH_TOKEN"],
        scrub_vars: &["ANTHROPIC_API_KEY"],
    },
    Preset {
        name: "http",
        base_url: "",
        auth: "bearer",
        actions: &[a("read=GET:/**", 1, true), a("write=POST:/**", 1, false)],
        url_vars: &[],
        token_vars: &[],
        scrub_vars: &[],
    },
];

/// A preset by name (case-insensitive).
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// The names, for messages.
pub fn names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}

/// What the app and `mandate connection presets` show of a preset.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct PresetView {
    pub name: String,
    pub base_url: String,
    pub auth: String,
    pub actions: Vec<String>,
    pub sdk_variables: Vec<String>,
    /// The actions the wizard ticks by default: narrow reads of non-sensitive data only.
    pub default_actions: Vec<String>,
    /// A real request per action that has one (`user.read` → `/user`), for examples.
    pub examples: Vec<ActionExample>,
}

/// A real request of a vendor's API that an action covers.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
pub struct ActionExample {
    pub action: String,
    /// Path and query under the connection's base URL (`/user`).
    pub path: String,
}

impl Preset {
    pub fn placement(&self) -> CredentialPlacement {
        self.auth.parse().unwrap_or_default()
    }

    pub fn view(&self) -> PresetView {
        PresetView {
            name: self.name.into(),
            base_url: self.base_url.into(),
            auth: self.auth.into(),
            actions: self.actions.iter().map(|a| a.spec.to_string()).collect(),
            sdk_variables: self
                .url_vars
                .iter()
                .chain(self.token_vars)
                .map(|v| v.to_string())
                .collect(),
            default_actions: self
                .actions
                .iter()
                .filter(|a| a.default)
                .map(|a| a.name().to_string())
                .collect(),
            examples: self
                .actions
                .iter()
                .filter_map(|a| {
                    a.example.map(|path| ActionExample {
                        action: a.name().to_string(),
                        path: path.to_string(),
                    })
                })
                .collect(),
        }
    }
}

impl Preset {
    /// The connection this preset describes, named `name`, with every preset action, its
    /// credential placement, costs and essential actions. The `http` preset has no base URL
    /// and so cannot be used alone.
    pub fn connection(&self, name: &str) -> Result<(NewConnection, BrokerSetup)> {
        if self.base_url.is_empty() {
            return Err(Error::invalid(format!(
                "the {} preset has no base URL; add the connection with its base URL first",
                self.name
            )));
        }
        let mut costs = Vec::new();
        let mut essential = Vec::new();
        for a in self.actions {
            let n = a
                .spec
                .split_once('=')
                .map_or(a.spec, |(n, _)| n)
                .to_string();
            if a.cost != 1 {
                costs.push((n.clone(), a.cost));
            }
            if a.essential {
                essential.push(n);
            }
        }
        Ok((
            NewConnection {
                name: name.to_string(),
                base_url: self.base_url.to_string(),
                actions: self.actions.iter().map(|a| a.spec.to_string()).collect(),
                trust_floor: None,
            },
            BrokerSetup {
                auth: self.placement(),
                preset: Some(self.name.to_string()),
                costs,
                essential,
                ..BrokerSetup::default()
            },
        ))
    }
}

impl Mandate {
    /// Add the connection `name` exactly as the preset `preset` describes it (what
    /// `mandate connection add NAME --preset P` does without overrides).
    pub fn add_preset_connection(&self, name: &str, preset: &str) -> Result<Connection> {
        let p = self::preset(preset).ok_or_else(|| {
            Error::invalid(format!(
                "there is no preset '{preset}'; presets: {}",
                names().join(", ")
            ))
        })?;
        let (new, setup) = p.connection(name)?;
        self.add_brokered_connection(new, setup)
    }

    /// Add `new`, starting from the preset `preset` when one is named: its credential
    /// placement, and the costs and essential flags of the preset actions `new` kept (its
    /// actions, base URL and floor are `new`'s). What the app's Add dialog and the team
    /// server's member API do.
    pub fn add_connection_from(
        &self,
        new: NewConnection,
        preset: Option<&str>,
    ) -> Result<Connection> {
        let Some(p) = preset.map(str::trim).filter(|p| !p.is_empty()) else {
            return self.add_connection(new);
        };
        let preset = self::preset(p).ok_or_else(|| {
            Error::invalid(format!(
                "there is no preset '{p}'; presets: {}",
                names().join(", ")
            ))
        })?;
        let kept: Vec<&str> = new
            .actions
            .iter()
            .map(|a| a.split_once('=').map_or(a.as_str(), |(n, _)| n).trim())
            .collect();
        let mut setup = BrokerSetup {
            auth: preset.placement(),
            preset: Some(preset.name.to_string()),
            ..BrokerSetup::default()
        };
        for a in preset.actions {
            let name = a.spec.split_once('=').map_or(a.spec, |(n, _)| n);
            if kept.contains(&name) {
                if a.cost != 1 {
                    setup.costs.push((name.to_string(), a.cost));
                }
                if a.essential {
                    setup.essential.push(name.to_string());
                }
            }
        }
        self.add_brokered_connection(new, setup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ConnectionAction;

    #[test]
    fn every_preset_is_valid() {
        for p in PRESETS {
            p.auth.parse::<CredentialPlacement>().unwrap();
            for a in p.actions {
                ConnectionAction::parse(a.spec).unwrap();
            }
            assert!(
                p.actions[0].spec.contains("=GET:"),
                "{}: read-only first",
                p.name
            );
        }
        assert!(preset("GitHub").is_some());
    }

    #[test]
    fn defaults_are_narrow_reads_and_examples_are_covered_by_their_action() {
        for p in PRESETS {
            for a in p.actions {
                let action = ConnectionAction::parse(a.spec).unwrap();
                if a.default {
                    assert_eq!(action.method, "GET", "{}: a default is a read", a.spec);
                }
                if let Some(ex) = a.example {
                    let path = ex.split('?').next().unwrap();
                    let segs = super::super::path::confine(path).unwrap().segments;
                    assert!(
                        super::super::path::matches(&action.path_pattern, &segs),
                        "{}: {ex} is not covered",
                        a.spec
                    );
                }
            }
        }
        // What the walk pre-ticked: never the history of Slack channels or private repos.
        let ticked = |p: &str| preset(p).unwrap().view().default_actions;
        assert_eq!(ticked("github"), ["user.read"]);
        assert_eq!(ticked("slack"), ["conversations.read"]);
        assert!(ticked("stripe").is_empty());
        assert_eq!(ticked("openai"), ["models.read"]);
    }
}
