//! `mandate attestor ...`, `mandate attest ...` and `mandate trust ...`: the outside parties
//! whose signed reviews count towards an agent's score, their attestations, and the
//! thresholds and organisation floor the score is read with. Adapters only: the rules are in
//! `mandate_core::trust`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::context::{CliError, CliResult, Ctx};
use crate::output;

#[derive(Debug, Subcommand)]
pub enum AttestorCmd {
    /// Register an attestor: its Ed25519 public key and the most points one of its
    /// attestations may add or remove.
    Add {
        name: String,
        /// The attestor's public key: a JWK, PEM `PUBLIC KEY` or `ssh-ed25519` line.
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
        /// 1 to 30: what one attestation may add to (or, for a fail, take from) the score.
        #[arg(long, value_name = "N")]
        max_points: i32,
    },
    /// List attestors, revoked ones included.
    List,
    /// Withdraw an attestor: its attestations stop counting at once.
    Revoke {
        name: String,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AttestCmd {
    /// Verify a signed review (an in-toto statement in a DSSE envelope) and store it.
    Add {
        /// The DSSE envelope (JSON).
        file: PathBuf,
    },
    /// An agent's attestations and whether each counts now.
    List { agent: String },
    /// What an attestor signs for an agent now: the subject (its id and the digest of its
    /// current configuration) and the predicate type.
    Subject { agent: String },
}

#[derive(Debug, Args)]
pub struct TrustArgs {
    /// From this score on, an agent is TRUSTED (default 70).
    #[arg(long, value_name = "SCORE")]
    trusted_min: Option<i32>,
    /// From this score on, PENDING; below it, UNTRUSTED (default 20).
    #[arg(long, value_name = "SCORE")]
    pending_min: Option<i32>,
    /// Every request of every agent needs at least this score (default 0: none).
    #[arg(long, value_name = "SCORE")]
    organisation_floor: Option<i32>,
}

fn read(path: &std::path::Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|e| CliError::Exit {
        code: 3,
        message: format!("cannot read {}: {e}", path.display()),
    })
}

pub fn run_attestor(ctx: &mut Ctx, cmd: AttestorCmd) -> CliResult {
    let m = ctx.mandate()?;
    let a = match cmd {
        AttestorCmd::Add {
            name,
            public_key,
            max_points,
        } => m.add_attestor(&name, &read(&public_key)?, max_points)?,
        AttestorCmd::Revoke { name, reason } => m.revoke_attestor(&name, &reason)?,
        AttestorCmd::List => {
            let all = m.list_attestors()?;
            if ctx.json {
                return output::json(&all);
            }
            if all.is_empty() {
                println!(
                    "No attestors yet. Register one with `mandate attestor add NAME \
                     --public-key FILE --max-points N`."
                );
                return Ok(());
            }
            let mut t = output::table(&["NAME", "FINGERPRINT", "MAX POINTS", "STATE"]);
            for a in all {
                t.add_row(vec![
                    a.name.clone(),
                    a.fingerprint.clone(),
                    format!("±{}", a.max_points),
                    match (&a.revoked_at, &a.revoke_reason) {
                        (Some(at), r) => format!(
                            "revoked {} ({})",
                            at.format("%Y-%m-%d"),
                            r.as_deref().unwrap_or("")
                        ),
                        (None, _) => "active".into(),
                    },
                ]);
            }
            println!("{t}");
            return Ok(());
        }
    };
    if ctx.json {
        return output::json(&a);
    }
    match &a.revoked_at {
        Some(_) => println!(
            "Attestor '{}' revoked: its attestations no longer count towards any score.",
            a.name
        ),
        None => println!(
            "Attestor '{}' registered (key {}); each of its attestations counts for at most \
             ±{} points.",
            a.name, a.fingerprint, a.max_points
        ),
    }
    Ok(())
}

pub fn run_attest(ctx: &mut Ctx, cmd: AttestCmd) -> CliResult {
    let m = ctx.mandate()?;
    match cmd {
        AttestCmd::Add { file } => {
            let a = m.add_attestation(&read(&file)?)?;
            if ctx.json {
                return output::json(&a);
            }
            println!(
                "Attestation from '{}' stored for '{}': review {}, {:+} points, valid until {}.",
                a.attestor,
                a.agent,
                a.result.as_str(),
                a.points,
                a.expires_at.format("%Y-%m-%d %H:%M UTC")
            );
        }
        AttestCmd::List { agent } => {
            let all = m.list_attestations(&agent)?;
            if ctx.json {
                return output::json(&all);
            }
            if all.is_empty() {
                println!(
                    "No attestations for '{agent}'. `mandate attest subject {agent}` prints \
                     what an attestor signs."
                );
                return Ok(());
            }
            let mut t = output::table(&[
                "ATTESTOR", "RESULT", "POINTS", "VERSION", "EXPIRES", "COUNTS",
            ]);
            for a in all {
                t.add_row(vec![
                    a.attestor.clone(),
                    a.result.as_str().to_string(),
                    format!("{:+}", a.points),
                    a.config_version.to_string(),
                    a.expires_at.format("%Y-%m-%d %H:%M UTC").to_string(),
                    match &a.why_not {
                        None => "yes".to_string(),
                        Some(w) => format!("no: {w}"),
                    },
                ]);
            }
            println!("{t}");
        }
        AttestCmd::Subject { agent } => {
            let s = m.attestation_subject(&agent)?;
            output::json(&s)?;
        }
    }
    Ok(())
}

pub fn run_trust(ctx: &mut Ctx, a: TrustArgs) -> CliResult {
    let m = ctx.mandate()?;
    let s = if a.trusted_min.is_none() && a.pending_min.is_none() && a.organisation_floor.is_none()
    {
        m.trust_settings()?
    } else {
        m.set_trust_settings(a.trusted_min, a.pending_min, a.organisation_floor)?
    };
    if ctx.json {
        return output::json(&s);
    }
    println!(
        "TRUSTED    from a score of {}\nPENDING    from {}\nUNTRUSTED  below {}\nOrganisation floor  {}",
        s.thresholds.trusted_min,
        s.thresholds.pending_min,
        s.thresholds.pending_min,
        if s.organisation_floor == 0 {
            "none".to_string()
        } else {
            format!(
                "every request needs a score of at least {}",
                s.organisation_floor
            )
        }
    );
    Ok(())
}
