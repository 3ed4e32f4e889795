//! The desktop app's entry point.
//!
//! `mandate-desktop --export-bindings FILE` writes the TypeScript bindings and exits without
//! opening a window (CI uses it to check the committed bindings for drift).

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, path] = args.as_slice()
        && flag == "--export-bindings"
    {
        return match mandate_desktop::export_bindings(std::path::Path::new(path)) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    mandate_desktop::run()
}
