//! Tauri's build step. The capabilities live beside the shell's sources, not at the root.

fn main() {
    println!("cargo:rerun-if-changed=src-tauri/desktop/capabilities");
    println!("cargo:rerun-if-changed=tauri.conf.json");
    // The UI is embedded at compile time: rebuild when it is rebuilt.
    println!("cargo:rerun-if-changed=ui/dist");
    let attrs = tauri_build::Attributes::new()
        .capabilities_path_pattern("./src-tauri/desktop/capabilities/**/*");
    if let Err(e) = tauri_build::try_build(attrs) {
        println!("cargo:warning=tauri build step failed: {e}");
        std::process::exit(1);
    }
}
