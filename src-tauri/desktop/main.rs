//! The desktop app's entry point.
//!
//! `mandate-desktop --export-bindings [FILE]` writes the TypeScript bindings (by default to
//! `ui/src/lib/backend/bindings.ts`) and exits without opening a window; CI runs it and checks
//! the committed file for drift with `git diff --exit-code`.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use std::path::Path;
use std::process::ExitCode;

// The same allocator as `mandate serve`: the app runs the same endpoint (docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = match args.as_slice() {
        [flag] if flag == "--export-bindings" => mandate_desktop::BINDINGS_PATH,
        [flag, path] if flag == "--export-bindings" => path.as_str(),
        _ => return mandate_desktop::run(),
    };
    match mandate_desktop::export_bindings(Path::new(path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
