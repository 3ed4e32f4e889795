//! Path confinement and action matching for proxied calls.
//!
//! The upstream URL is always the connection's base URL + a path that passed [`confine`] +
//! the query, so a call can never leave the connection's host or its base path. [`confine`]
//! refuses rather than repairs: `.` and `..` segments in any spelling (`%2e%2e`, `.%2E`,
//! `..;`), encoded slashes and backslashes (`%2f`, `%5c`), raw backslashes, empty segments
//! (`//`), NUL and control characters, and double encoding (`%25..`), because an upstream
//! that decodes once more, or a framework that treats `;` or `\` as a separator, would see a
//! different path than the one the scope was checked against. A path that survives has the
//! same segments for us and for any upstream.
//!
//! Actions are matched on the decoded segments: `*` is exactly one non-empty segment, `**`
//! is any number of segments (also none), anything else is literal and case-sensitive.
//!
//! What it is not: a URL parser for the request target. The route hands over the raw path
//! after `/proxy/{connection}`; an absolute-form target's authority is never used.

use crate::model::ConnectionAction;

/// A path that may be forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfinedPath {
    /// As the client encoded it (this is what goes upstream), starting with `/`.
    pub raw: String,
    /// Each segment percent-decoded, for matching.
    pub segments: Vec<String>,
}

/// Longest path we forward.
pub const MAX_PATH_LEN: usize = 4096;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decode one segment; `None` when an escape is malformed.
fn decode(seg: &str) -> Option<Vec<u8>> {
    let b = seg.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = hex(*b.get(i + 1)?)?;
            let lo = hex(*b.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Check a raw (still percent-encoded) path; the reason is a sentence for the caller.
pub fn confine(raw: &str) -> Result<ConfinedPath, &'static str> {
    if raw.len() > MAX_PATH_LEN {
        return Err("the path is longer than 4096 bytes");
    }
    let Some(rest) = raw.strip_prefix('/') else {
        return Err("the path must start with '/'");
    };
    if raw.contains('\\') {
        return Err("the path contains a backslash");
    }
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("the path contains control characters");
    }
    let mut segments = Vec::new();
    let parts: Vec<&str> = rest.split('/').collect();
    let last = parts.len().saturating_sub(1);
    for (i, seg) in parts.iter().enumerate() {
        if seg.is_empty() {
            // A single trailing slash is allowed; an empty segment anywhere else is `//`.
            if i == last && i > 0 {
                segments.push(String::new());
                continue;
            }
            if i == 0 && parts.len() == 1 {
                // The bare root "/".
                continue;
            }
            return Err("the path contains an empty segment (a double slash)");
        }
        let Some(bytes) = decode(seg) else {
            return Err("the path contains a malformed percent escape");
        };
        let Ok(text) = String::from_utf8(bytes) else {
            return Err("the path does not decode to UTF-8");
        };
        if text.contains('/') || text.contains('\\') {
            return Err("the path contains an encoded slash or backslash");
        }
        if text.chars().any(|c| c.is_control()) {
            return Err("the path contains encoded control characters");
        }
        if text.contains('%') {
            return Err("the path contains a double-encoded character (%25)");
        }
        let bare = text.split(';').next().unwrap_or("");
        if bare == "." || bare == ".." {
            return Err("the path contains a '.' or '..' segment");
        }
        segments.push(text);
    }
    Ok(ConfinedPath {
        raw: raw.to_string(),
        segments,
    })
}

/// Whether `pattern` (an action's path pattern) matches the decoded `segments`.
pub fn matches(pattern: &str, segments: &[String]) -> bool {
    let pat: Vec<&str> = pattern
        .strip_prefix('/')
        .unwrap_or(pattern)
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    // A trailing slash in the pattern asks for one in the path.
    let pat_trailing = pattern.len() > 1 && pattern.ends_with('/');
    let (segs, path_trailing) = match segs.split_last() {
        Some((&"", init)) => (init.to_vec(), true),
        _ => (segs, false),
    };
    if pat_trailing && !path_trailing {
        return false;
    }
    if path_trailing && !pat_trailing && pat.last() != Some(&"**") {
        return false;
    }
    match_from(&pat, &segs)
}

fn match_from(pat: &[&str], segs: &[&str]) -> bool {
    match pat.split_first() {
        None => segs.is_empty(),
        Some((&"**", rest)) => (0..=segs.len()).any(|k| match_from(rest, &segs[k..])),
        Some((p, rest)) => match segs.split_first() {
            Some((s, srest)) => (*p == "*" || p == s) && match_from(rest, srest),
            None => false,
        },
    }
}

/// How specific a pattern is: more literal segments first, then fewer wildcards.
fn specificity(pattern: &str) -> (usize, usize) {
    let segs: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let literal = segs.iter().filter(|s| **s != "*" && **s != "**").count();
    let wild = segs.len() - literal;
    (literal, usize::MAX - wild)
}

/// Every action whose method and pattern match, most specific first.
pub fn matching_actions<'a>(
    actions: &'a [ConnectionAction],
    method: &str,
    path: &ConfinedPath,
) -> Vec<&'a ConnectionAction> {
    let mut out: Vec<&ConnectionAction> = actions
        .iter()
        .filter(|a| a.method == "*" || a.method.eq_ignore_ascii_case(method))
        .filter(|a| matches(&a.path_pattern, &path.segments))
        .collect();
    out.sort_by_key(|a| std::cmp::Reverse(specificity(&a.path_pattern)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> Vec<String> {
        confine(p).unwrap().segments
    }

    #[test]
    fn refuses_every_escape_spelling() {
        for bad in [
            "/repos/../admin",
            "/repos/./x",
            "/repos/%2e%2e/admin",
            "/repos/%2E%2E/admin",
            "/repos/.%2e/admin",
            "/repos/..;/admin",
            "/repos/a%2fb",
            "/repos/a%2Fb",
            "/repos/a%5cb",
            "/repos\\..\\admin",
            "/repos//x",
            "//evil.example/x",
            "/repos/%252e%252e/x",
            "/repos/%00",
            "/repos/%zz",
            "/repos/a\u{7f}",
            "repos/x",
            "",
        ] {
            assert!(confine(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn keeps_ordinary_paths_and_their_encoding() {
        let p = confine("/repos/acme/my%20repo/issues/").unwrap();
        assert_eq!(p.raw, "/repos/acme/my%20repo/issues/");
        assert_eq!(p.segments, vec!["repos", "acme", "my repo", "issues", ""]);
        assert_eq!(confine("/").unwrap().segments, Vec::<String>::new());
        assert!(confine("/v1/chat/completions").is_ok());
        assert!(
            confine("/a/..b/c...").is_ok(),
            "dots inside a name are fine"
        );
    }

    #[test]
    fn wildcards_match_segments() {
        assert!(matches("/repos/**", &segs("/repos/a/b/c")));
        assert!(matches("/repos/**", &segs("/repos")));
        assert!(matches("/repos/**", &segs("/repos/a/")));
        assert!(!matches("/repos/**", &segs("/user")));
        assert!(matches("/repos/*/*/issues", &segs("/repos/a/b/issues")));
        assert!(!matches("/repos/*/*/issues", &segs("/repos/a/issues")));
        assert!(!matches("/repos/*/*/issues", &segs("/repos/a/b/issues/1")));
        assert!(!matches("/repos/*/*/issues", &segs("/repos/a/b/issues/")));
        assert!(matches("/user", &segs("/user")));
        assert!(!matches("/user", &segs("/User")));
        assert!(matches("/**", &segs("/")));
    }

    #[test]
    fn most_specific_action_first() {
        let acts: Vec<ConnectionAction> = [
            "repo.read=GET:/repos/**",
            "issues.read=GET:/repos/*/*/issues",
            "any=*:/**",
        ]
        .iter()
        .map(|a| ConnectionAction::parse(a).unwrap())
        .collect();
        let p = confine("/repos/a/b/issues").unwrap();
        let names: Vec<&str> = matching_actions(&acts, "GET", &p)
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(names, vec!["issues.read", "repo.read", "any"]);
        let names: Vec<&str> = matching_actions(&acts, "DELETE", &p)
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        assert_eq!(names, vec!["any"]);
    }
}
