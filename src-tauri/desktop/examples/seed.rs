//! Make a large installation for measuring the desktop app (docs/BENCHMARKS.md, "Desktop
//! app"): `cargo run -p mandate-desktop --example seed -- DIR AGENTS EVENTS`.
//!
//! It uses the report crate's sample installation (a team, connections, a stream of token
//! events) and adds agents up to AGENTS. Keys live in an in-memory keychain: this is data to
//! look at and scroll through, not an installation to run agents from.

use std::process::ExitCode;

use mandate_core::{KeyChoice, NewAgent};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, agents, events] = args.as_slice() else {
        eprintln!("usage: seed DIR AGENTS EVENTS");
        return ExitCode::from(2);
    };
    let (Ok(agents), Ok(events)) = (agents.parse::<usize>(), events.parse::<u64>()) else {
        eprintln!("AGENTS and EVENTS are numbers");
        return ExitCode::from(2);
    };
    let started = std::time::Instant::now();
    let run = || -> mandate_core::Result<()> {
        let (m, _clock) = mandate_report::sample::installation(std::path::Path::new(dir), events)?;
        let have = m.list_agents()?.len();
        for i in have..agents {
            m.add_agent(NewAgent {
                name: format!("fleet-agent-{i:04}"),
                purpose: format!("worker number {i} of the test fleet"),
                owner: "ops".into(),
                parent: None,
                scopes: vec!["github:repo.read".into()],
                key: KeyChoice::None,
            })?;
        }
        Ok(())
    };
    match run() {
        Ok(()) => {
            eprintln!("seeded {dir} in {:.1} s", started.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
