//! Which connection a credential may go into: a credential goes only into a connection of its
//! own kind. A GitHub token goes into a GitHub-shaped connection, a database URL into a
//! database connection, and a credential whose kind Mandate cannot tell apart only into a
//! connection the person chose that is not shaped for some other vendor.
//!
//! This is the rule that keeps a default click from storing a database URL as the GitHub
//! token (issue 17): the migration wizard, `mandate scan --move` and
//! `mandate connection set-secret` all go through it, so no adapter can forget it.
//!
//! What it is not: a validity check. A token of the right shape may still be revoked or belong
//! to another account; only the vendor can say.

use crate::broker::presets;
use crate::error::{Error, Result};
use crate::model::{Connection, ConnectionKind};
use crate::scan;
use crate::secret::Sensitive;

/// The shape of a connection, as far as credentials are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A database connection: it takes database URLs only.
    Database,
    /// An HTTP connection shaped for a vendor preset (`github`, `openai`...): made from that
    /// preset, or pointing at that preset's base URL.
    Vendor(&'static str),
    /// Any other HTTP API.
    Custom,
}

/// The shape of `c`.
pub fn shape_of(c: &Connection) -> Shape {
    if c.kind == ConnectionKind::Database {
        return Shape::Database;
    }
    let vendor = |p: &presets::Preset| !p.base_url.is_empty();
    if let Some(p) = c.preset.as_deref().and_then(presets::preset)
        && vendor(p)
    {
        return Shape::Vendor(p.name);
    }
    let base = c.base_url.trim_end_matches('/');
    presets::PRESETS
        .iter()
        .find(|p| vendor(p) && p.base_url == base)
        .map_or(Shape::Custom, |p| Shape::Vendor(p.name))
}

/// What kind of connection a credential of scanner kind `kind` belongs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Home {
    /// A connection shaped for this preset.
    Vendor(&'static str),
    /// A database connection.
    Database,
    /// Mandate cannot tell: the person chooses, among connections not shaped for a vendor.
    Unknown,
}

/// Where a credential of scanner kind `kind` belongs.
pub fn home_of(kind: &str) -> Home {
    if kind == scan::DATABASE_URL {
        return Home::Database;
    }
    match scan::preset_of(kind) {
        Some(p) => Home::Vendor(p),
        None => Home::Unknown,
    }
}

/// A vendor's name as people write it ("GitHub").
pub fn vendor_label(preset: &str) -> &str {
    match preset {
        "github" => "GitHub",
        "slack" => "Slack",
        "stripe" => "Stripe",
        "openai" => "OpenAI",
        "anthropic" => "Anthropic",
        other => other,
    }
}

fn shape_words(c: &Connection) -> String {
    match shape_of(c) {
        Shape::Database => format!("'{}' is a database connection", c.name),
        Shape::Vendor(p) => format!("'{}' is a {} connection", c.name, vendor_label(p)),
        Shape::Custom => format!("'{}' is an HTTP connection to {}", c.name, c.base_url),
    }
}

/// Whether a credential of scanner kind `kind` may go into `c`; the refusal says where it may
/// go instead.
pub fn check(c: &Connection, kind: &str) -> Result<()> {
    let label = scan::label_of(kind);
    let fits = match (home_of(kind), shape_of(c)) {
        (Home::Database, Shape::Database) => true,
        (Home::Vendor(want), Shape::Vendor(have)) => want == have,
        (Home::Unknown, Shape::Custom) => true,
        _ => false,
    };
    if fits {
        return Ok(());
    }
    let instead = match home_of(kind) {
        Home::Database => {
            "a database URL goes only into a database connection (choose one, or a new one: \
             `mandate connection add NAME --kind database`)"
                .to_string()
        }
        Home::Vendor(p) => format!(
            "a {label} goes only into a {} connection (choose one, or a new one made from the \
             {p} preset)",
            vendor_label(p)
        ),
        Home::Unknown => format!(
            "Mandate cannot tell which system a {label} is for, so it goes only into a \
             connection you choose that is not made for another vendor (add one first with \
             `mandate connection add NAME --base-url URL`)"
        ),
    };
    Err(Error::invalid(format!(
        "{}, so it cannot hold a {label}: {instead}. Nothing was changed",
        shape_words(c)
    )))
}

/// Check a credential someone typed or piped in before it is stored as `c`'s: a database
/// connection takes a database URL; an HTTP connection refuses a value Mandate recognises as
/// belonging elsewhere (a database URL, or another vendor's token). Values Mandate does not
/// recognise pass: most APIs' keys have no documented shape.
pub fn check_value(c: &Connection, secret: &Sensitive<String>) -> Result<()> {
    let value = secret.expose().trim();
    if c.kind == ConnectionKind::Database {
        let ok = url::Url::parse(value)
            .is_ok_and(|u| !matches!(u.scheme(), "http" | "https") && value.contains("://"));
        if !ok {
            return Err(Error::invalid(format!(
                "'{}' is a database connection, and this is not a database URL; give the whole \
                 URL the program connects with, such as postgres://USER:PASSWORD@HOST:5432/DB. \
                 Nothing was stored",
                c.name
            )));
        }
        return Ok(());
    }
    match scan::identify(value) {
        Some(kind) => check(c, kind),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::model::{ConnectionId, ConnectionName};

    fn conn(kind: ConnectionKind, base: &str, preset: Option<&str>) -> Connection {
        Connection {
            id: ConnectionId("c".into()),
            name: ConnectionName::parse("target").unwrap(),
            kind,
            base_url: base.into(),
            preset: preset.map(String::from),
            variable: None,
            actions: vec![],
            has_secret: false,
            secret_changed_at: None,
            trust_floor: crate::model::TrustState::Pending,
            min_score: None,
            granted_to: vec![],
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn each_credential_goes_only_into_a_connection_of_its_kind() {
        let github = conn(
            ConnectionKind::Http,
            "https://api.github.com",
            Some("github"),
        );
        let github_by_url = conn(ConnectionKind::Http, "https://api.github.com/", None);
        let openai = conn(
            ConnectionKind::Http,
            "https://api.openai.com/v1",
            Some("openai"),
        );
        let custom = conn(ConnectionKind::Http, "https://crm.example", Some("http"));
        let db = conn(
            ConnectionKind::Database,
            "urn:mandate:connection:target",
            None,
        );
        assert!(check(&github, "github_token").is_ok());
        assert!(check(&github_by_url, "github_fine_grained_pat").is_ok());
        // The walk: a database URL into the GitHub connection.
        let e = check(&github, "database_url").unwrap_err().to_string();
        assert!(e.contains("'target' is a GitHub connection"), "{e}");
        assert!(e.contains("goes only into a database connection"), "{e}");
        assert!(check(&db, "database_url").is_ok());
        assert!(check(&db, "github_token").is_err());
        assert!(check(&openai, "github_token").is_err());
        assert!(check(&custom, "github_token").is_err());
        // Unknown kinds only into a connection not shaped for a vendor.
        assert!(check(&custom, "aws_access_key_id").is_ok());
        assert!(check(&github, "aws_access_key_id").is_err());
        assert!(check(&db, "aws_access_key_id").is_err());
    }

    #[test]
    fn typed_values_are_checked_when_recognised() {
        let github = conn(
            ConnectionKind::Http,
            "https://api.github.com",
            Some("github"),
        );
        let db = conn(
            ConnectionKind::Database,
            "urn:mandate:connection:target",
            None,
        );
        let url = Sensitive::new(format!("postgres://app:{}@db:5432/app", "p4ss".repeat(3)));
        let token = Sensitive::new(format!("ghp_{}", "a1B2".repeat(9)));
        let unknown = Sensitive::new("an-opaque-api-key-1234".to_string());
        assert!(check_value(&github, &url).is_err());
        assert!(check_value(&github, &token).is_ok());
        assert!(check_value(&github, &unknown).is_ok());
        assert!(check_value(&db, &url).is_ok());
        assert!(check_value(&db, &token).is_err());
        assert!(check_value(&db, &Sensitive::new("https://x.example".into())).is_err());
        let e = check_value(&db, &unknown).unwrap_err().to_string();
        assert!(!e.contains("an-opaque"), "{e}");
    }
}
