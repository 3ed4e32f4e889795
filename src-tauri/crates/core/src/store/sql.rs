//! Placeholder translation: shared SQL is written with SQLite's `?NNN` (and bare `?`, numbered
//! as SQLite numbers it: one more than the largest number so far); PostgreSQL wants `$NNN`.
//! Quoted strings, quoted identifiers and comments are copied unchanged.
//!
//! What it is not: a SQL parser. Anything else in the text is left alone, so a shared
//! statement must already mean the same on both engines.

/// `sql` with every placeholder in PostgreSQL's spelling.
pub fn to_postgres(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 8);
    let mut i = 0;
    let mut largest = 0u32;
    let mut copied = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"') => {
                // To the closing quote; a doubled quote is an escaped one and stays inside.
                i += 1;
                while i < b.len() {
                    if b[i] == q {
                        if b.get(i + 1) == Some(&q) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            b'?' => {
                out.push_str(&sql[copied..i]);
                let start = i + 1;
                let mut end = start;
                while end < b.len() && b[end].is_ascii_digit() {
                    end += 1;
                }
                let n = if end > start {
                    sql[start..end].parse::<u32>().unwrap_or(u32::MAX)
                } else {
                    largest + 1
                };
                largest = largest.max(n);
                out.push('$');
                out.push_str(&n.to_string());
                i = end;
                copied = end;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied.min(sql.len())..]);
    out
}

#[cfg(test)]
mod tests {
    use super::to_postgres;

    #[test]
    fn numbered_and_bare_placeholders_become_dollar_numbers() {
        assert_eq!(
            to_postgres("SELECT a FROM t WHERE b = ?1 AND c = ?2 OR d = ?1"),
            "SELECT a FROM t WHERE b = $1 AND c = $2 OR d = $1"
        );
        // SQLite numbers a bare `?` one past the largest so far.
        assert_eq!(
            to_postgres("x = ? AND y = ?3 AND z = ?"),
            "x = $1 AND y = $3 AND z = $4"
        );
        assert_eq!(to_postgres("LIMIT ?12"), "LIMIT $12");
    }

    #[test]
    fn quoted_text_and_comments_are_left_alone() {
        assert_eq!(
            to_postgres(
                "SELECT '?1', 'it''s ?', \"odd?col\" FROM t -- why ?2\nWHERE a = ?1 /* ?9 */"
            ),
            "SELECT '?1', 'it''s ?', \"odd?col\" FROM t -- why ?2\nWHERE a = $1 /* ?9 */"
        );
    }

    #[test]
    fn unterminated_text_does_not_panic() {
        assert_eq!(to_postgres("SELECT 'abc"), "SELECT 'abc");
        assert_eq!(to_postgres("SELECT /* abc"), "SELECT /* abc");
        assert_eq!(to_postgres("?"), "$1");
    }
}
