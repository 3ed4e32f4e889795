//! Witnesses of a team server's audit log (issue 21 §3).
//!
//! Whoever runs a team server holds the issuer key in its token, so they could rewrite the
//! audit log and sign a fresh checkpoint over the new history; `mandate audit verify` on the
//! server would then pass. Witnesses close that gap: each (a founder's desktop, a CLI on
//! another machine) remembers the newest checkpoint it saw, checks every new one is an
//! append-only extension of it with an RFC 9162 consistency proof, and only then cosigns it
//! (C2SP `tlog-cosignature`, `mandate_audit_format::cosignature`). A server that forked or
//! rewrote its log cannot get a cosignature from any witness that saw the old history, and the
//! witness records the refusal in its own audit trail.
//!
//! Two sides, two modules:
//! - [`log`]: the server's part. Admins register witnesses by their cosignature key
//!   (`witness.added`); the server serves its newest checkpoint and consistency proofs between
//!   tree sizes, and keeps the cosignatures it can verify (`witness.cosigned`). Exports carry
//!   them.
//! - [`watch`]: the witness's part. Its Ed25519 key in the OS keychain, its memory of each log
//!   (`witnessed_logs`), and the decision: cosign, or refuse loudly
//!   (`witness.log_inconsistent`).
//!
//! Until members sign in (issue 21 §1), a witness is identified by its own key alone; a
//! member's desktop can later be a witness with the same key, registered by the member.
//!
//! What it is not: HTTP. The routes are in `mandate-server` (`witness.rs`) and the client that
//! syncs is there too (`witness_client.rs`); both call these functions.

pub mod log;
pub mod watch;

use crate::audit::Actor;
use mandate_audit_format::cosignature::WitnessKey;

/// The actor kind of a witness acting by its key (no member named yet).
pub const ACTOR_KIND: &str = "witness";

/// The audit actor for witness `key`: kind `witness`, id its key id, name its name.
pub fn actor(key: &WitnessKey) -> Actor {
    Actor {
        kind: ACTOR_KIND.into(),
        id: mandate_audit_format::hex(&key.key_id()),
        name: key.name.clone(),
    }
}

#[cfg(test)]
mod tests;
