//! The outcome of running the `mandate` binary, with the assertions every CLI test makes on it:
//! shared by the main integration tests (`fixture.rs`) and the team tests (`team/fixture.rs`).

use std::process::Output;

use serde_json::Value;

/// A finished `mandate` run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "mandate failed: {}\n{}",
            self.stderr, self.stdout
        );
        self
    }

    /// Assert a failure with `code` whose message contains `needle`.
    #[track_caller]
    pub fn fails(self, code: i32, needle: &str) -> Self {
        assert_eq!(self.code, code, "exit code; stderr: {}", self.stderr);
        assert!(
            self.stderr.contains(needle),
            "stderr should contain {needle:?}: {}",
            self.stderr
        );
        self
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}
