//! A team member's client of a team server (`mandate team ...` on the member's machine).
//!
//! Every exchange opens one TLS connection trusted as the member was told (`--server-ca`,
//! `--server-fingerprint`, or the Web PKI: [`RemoteServer`]) and first checks the server's
//! RFC 8414 metadata names exactly the URL given. Then:
//!
//! - [`join`]: `POST /team/join` with the invite code and the member's public key;
//! - [`member_token`]: a `private_key_jwt` assertion as `member:NAME`, signed with the
//!   member's key, and a DPoP proof made with the same key, at the token endpoint;
//! - [`call`]: one member API request with `Authorization: DPoP TOKEN` and a fresh proof.
//!
//! What it is not: where the key and the cached token are kept (the CLI keeps both in the OS
//! keychain), or any rule (the server decides and audits).

use axum::body::Bytes;
pub use axum::http::Method;
use axum::http::{Request, StatusCode, header};
use ed25519_dalek::SigningKey;
use http_body_util::Full;
use mandate_core::oauth::dpop::make_proof;
use mandate_core::oauth::member::MEMBER_CLIENT_PREFIX;
use mandate_core::oauth::{ASSERTION_TYPE_JWT_BEARER, GRANT_CLIENT_CREDENTIALS, client_assertion};
use mandate_core::secret::Sensitive;
use serde_json::Value;

use crate::client::{ClientError, TIMEOUT, send, send_limited};
use crate::remote::RemoteServer;

/// Largest member API answer read (an exported audit trail is the largest).
const MAX_API_ANSWER: usize = 256 * 1024 * 1024;

/// A member's signing key and who it belongs to.
#[derive(Debug)]
pub struct MemberKey<'a> {
    pub name: &'a str,
    pub kid: &'a str,
    pub key: &'a SigningKey,
}

/// A member's access token and how long it lives (seconds from issue).
#[derive(Debug)]
pub struct MemberToken {
    pub token: Sensitive<String>,
    pub expires_in: i64,
}

async fn within<T>(
    server: &RemoteServer,
    f: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    match tokio::time::timeout(TIMEOUT, f).await {
        Ok(r) => r,
        Err(_) => Err(ClientError::Unreachable {
            base: server.url().to_string(),
            reason: format!("no answer within {} s", TIMEOUT.as_secs()),
        }),
    }
}

/// An answer of the member API: its JSON, or the refusal it describes.
fn answer(status: StatusCode, body: &[u8]) -> Result<Value, ClientError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| ClientError::BadAnswer(format!("HTTP {status} without a JSON body")))?;
    if status.is_success() {
        return Ok(v);
    }
    Err(ClientError::Refused {
        error: v["error"]
            .as_str()
            .map_or_else(|| status.to_string(), str::to_string),
        description: v["error_description"]
            .as_str()
            .unwrap_or("no description")
            .to_string(),
    })
}

/// Redeem `code` at the server, enrolling `public_key` (base64url of its 32 bytes).
pub async fn join(
    server: &RemoteServer,
    code: &Sensitive<String>,
    public_key: &str,
) -> Result<Value, ClientError> {
    within(server, async {
        let mut conn = server.connect().await?;
        server.check_metadata(&mut conn).await?;
        let body = serde_json::json!({"code": code.expose(), "public_key": public_key});
        let req = Request::post("/team/join")
            .header(header::HOST, &conn.authority)
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        let (status, body) =
            send(&mut conn.sender, req)
                .await
                .map_err(|reason| ClientError::Unreachable {
                    base: server.url().to_string(),
                    reason,
                })?;
        answer(status, &body)
    })
    .await
}

/// A DPoP-bound access token for the member (bound to their own key).
pub async fn member_token(
    server: &RemoteServer,
    who: &MemberKey<'_>,
    now: i64,
) -> Result<MemberToken, ClientError> {
    within(server, async {
        let mut conn = server.connect().await?;
        let path = server.check_metadata(&mut conn).await?;
        let endpoint = format!("{}{path}", server.url());
        let client = format!("{MEMBER_CLIENT_PREFIX}{}", who.name);
        let assertion = client_assertion(&client, who.kid, who.key, &endpoint, now);
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", GRANT_CLIENT_CREDENTIALS)
            .append_pair("client_id", &client)
            .append_pair("client_assertion_type", ASSERTION_TYPE_JWT_BEARER)
            .append_pair("client_assertion", &assertion)
            .finish();
        let proof = make_proof(who.key, "POST", &endpoint, now, None);
        let req = Request::post(path)
            .header(header::HOST, &conn.authority)
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("DPoP", proof)
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        let (status, body) =
            send(&mut conn.sender, req)
                .await
                .map_err(|reason| ClientError::Unreachable {
                    base: server.url().to_string(),
                    reason,
                })?;
        let v = answer(status, &body)?;
        let token = v["access_token"]
            .as_str()
            .ok_or_else(|| ClientError::BadAnswer("no access_token in the answer".into()))?;
        Ok(MemberToken {
            token: Sensitive::new(token.to_string()),
            expires_in: v["expires_in"].as_i64().unwrap_or(0),
        })
    })
    .await
}

/// One member API request: `method path` (with its query) and an optional JSON body, with
/// the token and a fresh proof made with `key`.
pub async fn call(
    server: &RemoteServer,
    token: &Sensitive<String>,
    key: &SigningKey,
    method: Method,
    path_and_query: &str,
    body: Option<&Value>,
    now: i64,
) -> Result<Value, ClientError> {
    within(server, async {
        let mut conn = server.connect().await?;
        server.check_metadata(&mut conn).await?;
        let path = path_and_query.split('?').next().unwrap_or(path_and_query);
        let htu = format!("{}{path}", server.url());
        let proof = make_proof(key, method.as_str(), &htu, now, Some(token.expose()));
        let mut req = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(header::HOST, &conn.authority)
            .header(header::ACCEPT, "application/json")
            .header(header::AUTHORIZATION, format!("DPoP {}", token.expose()))
            .header("DPoP", proof);
        let bytes = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(bytes))
            .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        let (status, body) = send_limited(&mut conn.sender, req, MAX_API_ANSWER)
            .await
            .map_err(|reason| ClientError::Unreachable {
                base: server.url().to_string(),
                reason,
            })?;
        answer(status, &body)
    })
    .await
}

/// One audit event from the team's event stream.
#[derive(Debug, Clone)]
pub struct TeamEvent {
    pub seq: u64,
    /// The event, as `GET /team/v1/audit` returns it.
    pub event: Value,
}

/// How an event stream ended.
#[derive(Debug, Clone)]
pub struct StreamEnd {
    /// `member_removed`, `token_expired`, `shutdown`, or `closed` (the connection ended
    /// without an `end` event: the network, or the server went away).
    pub reason: String,
    pub message: String,
    /// Where to resume (`after`): the last event received, or further, where the server said
    /// the stream started or how far it read.
    pub last_seq: Option<u64>,
}

/// Follow the team's audit trail (`GET /team/v1/events`, server-sent events) after `after`
/// (else from now), calling `on_open` once the server accepted the stream and `on_event` for
/// each event, until the server ends the stream (its `end` event) or the connection closes.
/// A refusal to open it is an error.
pub async fn events(
    server: &RemoteServer,
    token: &Sensitive<String>,
    key: &SigningKey,
    after: Option<u64>,
    now: i64,
    on_open: impl FnOnce() + Send,
    on_event: impl FnMut(TeamEvent) + Send,
) -> Result<StreamEnd, ClientError> {
    use http_body_util::BodyExt as _;

    let unreachable = |reason: String| ClientError::Unreachable {
        base: server.url().to_string(),
        reason,
    };
    // Opening is bounded like every call; the stream itself lasts as long as the server keeps
    // it (its keep-alives arrive every 15 s).
    // `_conn` (the connection's driver) lives until the stream ends.
    let (_conn, res) = within(server, async {
        let mut conn = server.connect().await?;
        server.check_metadata(&mut conn).await?;
        let path = "/team/v1/events";
        let htu = format!("{}{path}", server.url());
        let proof = make_proof(key, "GET", &htu, now, Some(token.expose()));
        let mut req = Request::get(path)
            .header(header::HOST, &conn.authority)
            .header(header::ACCEPT, "text/event-stream")
            .header(header::AUTHORIZATION, format!("DPoP {}", token.expose()))
            .header("DPoP", proof);
        if let Some(a) = after {
            req = req.header("Last-Event-ID", a.to_string());
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        conn.sender
            .ready()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let res = conn
            .sender
            .send_request(req)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        Ok((conn, res))
    })
    .await?;
    let status = res.status();
    if !status.is_success() {
        let body = http_body_util::Limited::new(res.into_body(), 64 * 1024)
            .collect()
            .await
            .map_err(|e| unreachable(e.to_string()))?
            .to_bytes();
        return Err(answer(status, &body).err().unwrap_or_else(|| {
            ClientError::BadAnswer(format!("HTTP {status} instead of an event stream"))
        }));
    }
    on_open();
    follow(res.into_body().into_data_stream(), after, on_event).await
}

/// Read one event stream's bytes until it ends: each `audit` event to `on_event`, and where
/// to resume (`StreamEnd::last_seq`) from the events and from the server's `open` and `end`
/// ids. A minute without a byte (keep-alives come every 15 s) ends it as dead.
async fn follow<S, B, E>(
    body: S,
    after: Option<u64>,
    mut on_event: impl FnMut(TeamEvent) + Send,
) -> Result<StreamEnd, ClientError>
where
    S: futures_util::Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    use eventsource_stream::Eventsource as _;
    use futures_util::StreamExt as _;

    let mut stream = body.eventsource();
    let mut last_seq = after;
    // A keep-alive comes every 15 s: a minute without a byte is a dead connection.
    let idle = std::time::Duration::from_secs(60);
    loop {
        let next = match tokio::time::timeout(idle, stream.next()).await {
            Ok(n) => n,
            Err(_) => {
                return Ok(StreamEnd {
                    reason: "closed".into(),
                    message: "the team server sent nothing for a minute".into(),
                    last_seq,
                });
            }
        };
        let ev = match next {
            Some(Ok(ev)) => ev,
            Some(Err(e)) => {
                return Ok(StreamEnd {
                    reason: "closed".into(),
                    message: format!("the event stream broke off ({e})"),
                    last_seq,
                });
            }
            None => {
                return Ok(StreamEnd {
                    reason: "closed".into(),
                    message: "the team server closed the event stream".into(),
                    last_seq,
                });
            }
        };
        match ev.event.as_str() {
            "audit" => {
                let Ok(seq) = ev.id.parse::<u64>() else {
                    continue;
                };
                let Ok(event) = serde_json::from_str::<Value>(&ev.data) else {
                    continue;
                };
                last_seq = Some(seq);
                on_event(TeamEvent { seq, event });
            }
            // Where the stream starts (`open`) and how far it read (`end`): kept, so the
            // next stream resumes there even when no event reached this member.
            "open" => {
                if let Ok(seq) = ev.id.parse::<u64>() {
                    last_seq = last_seq.max(Some(seq));
                }
            }
            "end" => {
                if let Ok(seq) = ev.id.parse::<u64>() {
                    last_seq = last_seq.max(Some(seq));
                }
                let v: Value = serde_json::from_str(&ev.data).unwrap_or(Value::Null);
                return Ok(StreamEnd {
                    reason: v["reason"].as_str().unwrap_or("closed").to_string(),
                    message: v["message"].as_str().unwrap_or_default().to_string(),
                    last_seq,
                });
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of one stream, as the server writes them.
    async fn read(text: &str, after: Option<u64>) -> (StreamEnd, Vec<u64>) {
        let chunks: Vec<Result<Bytes, std::io::Error>> = text
            .as_bytes()
            .chunks(7)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let mut seen = Vec::new();
        let end = follow(futures_util::stream::iter(chunks), after, |e| {
            seen.push(e.seq)
        })
        .await
        .unwrap();
        (end, seen)
    }

    #[tokio::test]
    async fn a_stream_that_ends_before_any_event_still_says_where_to_resume() {
        // "From now" (no `after`), and the token expires before anything this member may read
        // happened: the next stream must start where this one read up to, not at a new "now".
        let (end, seen) = read(
            "event: open\nid: 41\ndata: {\"after\":41}\n\n: keep-alive\n\n\
             event: end\nid: 57\ndata: {\"reason\":\"token_expired\",\"message\":\"m\"}\n\n",
            None,
        )
        .await;
        assert!(seen.is_empty());
        assert_eq!(end.reason, "token_expired");
        assert_eq!(end.last_seq, Some(57));
    }

    #[tokio::test]
    async fn events_move_the_resume_point_and_a_cut_connection_keeps_the_last_one() {
        let (end, seen) = read(
            "event: open\nid: 10\ndata: {}\n\n\
             event: audit\nid: 12\ndata: {\"seq\":12}\n\n\
             event: audit\nid: 15\ndata: {\"seq\":15}\n\n",
            Some(10),
        )
        .await;
        assert_eq!(seen, vec![12, 15]);
        assert_eq!(end.reason, "closed");
        assert_eq!(end.last_seq, Some(15));
        // A server that says nothing of where it starts (an older one) resumes as asked.
        let (end, _) = read(": keep-alive\n\n", Some(9)).await;
        assert_eq!(end.last_seq, Some(9));
    }
}
