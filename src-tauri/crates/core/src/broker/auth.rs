//! Where a connection's credential goes on the way out: `bearer` (the default), `basic`,
//! `header:NAME` or `query:NAME`.
//!
//! [`CredentialPlacement::inject`] turns the keychain secret into exactly one header or one
//! query parameter, both still wrapped in [`Sensitive`]; it also names what must be stripped
//! from the agent's request first, so an agent can neither see nor override the credential.
//! [`Injection::needles`] lists every spelling of the secret that the upstream receives, so
//! the proxy can mask any echo of it in the response.
//!
//! What it is not: an HTTP client. The server adapter applies the injection to its request.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::secret::Sensitive;

/// Where the credential goes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "specta", derive(specta::Type))]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum CredentialPlacement {
    /// `Authorization: Bearer SECRET`.
    #[default]
    Bearer,
    /// `Authorization: Basic base64(SECRET)`; a secret without `:` is a user name with an
    /// empty password (Stripe's convention).
    Basic,
    /// `NAME: SECRET` (for example `x-api-key`).
    Header(String),
    /// `?NAME=SECRET` appended to the query.
    Query(String),
}

fn valid_header_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 100
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Headers the credential may not be placed in: they would break the request or the proxy.
const RESERVED: [&str; 8] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "cookie",
    "dpop",
    "te",
    "upgrade",
];

impl FromStr for CredentialPlacement {
    type Err = Error;

    fn from_str(raw: &str) -> Result<Self> {
        let usage = || {
            Error::invalid(format!(
                "'{raw}' is not a credential placement: use bearer, basic, header:NAME (for \
                 example header:x-api-key) or query:NAME (for example query:api_key)"
            ))
        };
        let raw_t = raw.trim();
        match raw_t.to_ascii_lowercase().as_str() {
            "bearer" => return Ok(CredentialPlacement::Bearer),
            "basic" => return Ok(CredentialPlacement::Basic),
            _ => {}
        }
        let (kind, name) = raw_t.split_once(':').ok_or_else(usage)?;
        let name = name.trim();
        match kind.trim().to_ascii_lowercase().as_str() {
            "header" => {
                let lower = name.to_ascii_lowercase();
                if !valid_header_name(name) || RESERVED.contains(&lower.as_str()) {
                    return Err(Error::invalid(format!(
                        "'{name}' cannot carry the credential: give an ordinary header name such \
                         as x-api-key"
                    )));
                }
                Ok(CredentialPlacement::Header(lower))
            }
            "query" => {
                if name.is_empty()
                    || name.len() > 100
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
                {
                    return Err(Error::invalid(format!(
                        "'{name}' is not a query parameter name Mandate accepts (letters, digits, \
                         - _ . ~)"
                    )));
                }
                Ok(CredentialPlacement::Query(name.to_string()))
            }
            _ => Err(usage()),
        }
    }
}

impl fmt::Display for CredentialPlacement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialPlacement::Bearer => f.write_str("bearer"),
            CredentialPlacement::Basic => f.write_str("basic"),
            CredentialPlacement::Header(n) => write!(f, "header:{n}"),
            CredentialPlacement::Query(n) => write!(f, "query:{n}"),
        }
    }
}

/// The credential, ready to put on one request.
#[derive(Debug)]
pub enum Injection {
    /// Set this header (replacing any the agent sent).
    Header {
        name: String,
        value: Sensitive<String>,
    },
    /// Append `name=value` (already percent-encoded) to the query, after removing any
    /// parameter of that name the agent sent.
    Query {
        name: String,
        encoded: Sensitive<String>,
    },
}

impl Injection {
    /// Every spelling of the secret the upstream receives (the raw secret, the header value,
    /// the encoded forms). Used to mask echoes in responses; spellings shorter than 8 bytes
    /// are left out (they would mask ordinary text).
    pub fn needles(&self, secret: &Sensitive<String>) -> Vec<Sensitive<String>> {
        let mut out = vec![secret.clone()];
        match self {
            Injection::Header { value, .. } => out.push(value.clone()),
            Injection::Query { encoded, .. } => out.push(encoded.clone()),
        }
        if let Some(b64) = self.basic_b64() {
            out.push(b64);
        }
        out.retain(|n| n.expose().len() >= 8);
        out
    }

    fn basic_b64(&self) -> Option<Sensitive<String>> {
        match self {
            Injection::Header { name, value } if name == "authorization" => value
                .expose()
                .strip_prefix("Basic ")
                .map(|b| Sensitive::new(b.to_string())),
            _ => None,
        }
    }
}

impl CredentialPlacement {
    /// The header (lower case) the agent's own copy of which must be removed, if any.
    pub fn header_name(&self) -> Option<&str> {
        match self {
            CredentialPlacement::Bearer | CredentialPlacement::Basic => Some("authorization"),
            CredentialPlacement::Header(n) => Some(n),
            CredentialPlacement::Query(_) => None,
        }
    }

    /// Turn the secret into what goes on the request.
    pub fn inject(&self, secret: &Sensitive<String>) -> Injection {
        match self {
            CredentialPlacement::Bearer => Injection::Header {
                name: "authorization".into(),
                value: Sensitive::new(format!("Bearer {}", secret.expose())),
            },
            CredentialPlacement::Basic => {
                let s = secret.expose();
                let pair = if s.contains(':') {
                    Sensitive::new(s.clone())
                } else {
                    Sensitive::new(format!("{s}:"))
                };
                let b64 = base64::engine::general_purpose::STANDARD.encode(pair.expose());
                Injection::Header {
                    name: "authorization".into(),
                    value: Sensitive::new(format!("Basic {b64}")),
                }
            }
            CredentialPlacement::Header(n) => Injection::Header {
                name: n.clone(),
                value: secret.clone(),
            },
            CredentialPlacement::Query(n) => Injection::Query {
                name: n.clone(),
                encoded: Sensitive::new(
                    form_urlencoded::byte_serialize(secret.expose().as_bytes()).collect(),
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_each_placement() {
        for (raw, want) in [
            ("bearer", "bearer"),
            ("BASIC", "basic"),
            ("header:X-Api-Key", "header:x-api-key"),
            ("query:api_key", "query:api_key"),
        ] {
            assert_eq!(
                raw.parse::<CredentialPlacement>().unwrap().to_string(),
                want
            );
        }
        for bad in [
            "",
            "cookie",
            "header:",
            "header:host",
            "header:a b",
            "query:a&b",
            "query:",
        ] {
            assert!(bad.parse::<CredentialPlacement>().is_err(), "{bad}");
        }
    }

    #[test]
    fn injects_where_configured() {
        let s = Sensitive::new("sk_test_123456".to_string());
        let Injection::Header { name, value } = CredentialPlacement::Basic.inject(&s) else {
            panic!("basic is a header")
        };
        assert_eq!(name, "authorization");
        assert_eq!(value.expose(), "Basic c2tfdGVzdF8xMjM0NTY6");
        let q = CredentialPlacement::Query("key".into()).inject(&Sensitive::new("a b&c".into()));
        let Injection::Query { encoded, .. } = q else {
            panic!("query")
        };
        assert_eq!(encoded.expose(), "a+b%26c");
        let needles = CredentialPlacement::Basic.inject(&s).needles(&s);
        assert!(needles.iter().any(|n| n.expose() == "c2tfdGVzdF8xMjM0NTY6"));
    }
}
