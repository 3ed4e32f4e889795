//! The credential scanner over one file's text (`scan::scan_text`), under the file names whose
//! formats it meets (`.env`, shell, YAML, TOML, JSON, Python, JavaScript, INI, Dockerfile).
//! Oracle: every finding points inside the text, and its value is shown masked, never whole.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mandate_core::scan::scan_text;

const FILES: [&str; 10] = [
    ".env", "deploy.sh", "config.yaml", "Cargo.toml", "settings.json", "main.py", "index.js",
    "app.ini", "Dockerfile", ".mcp.json",
];

#[derive(Arbitrary, Debug)]
struct Input {
    file: u8,
    text: String,
}

fuzz_target!(|input: Input| {
    let file = FILES[usize::from(input.file) % FILES.len()];
    let lines: Vec<&str> = input.text.lines().collect();
    for f in scan_text(file, &input.text) {
        assert_eq!(f.file, file);
        let line = lines.get(f.line as usize - 1).expect("a finding on a line of the text");
        assert!((f.column as usize) <= line.chars().count(), "column past the end of its line");
        assert!(
            f.masked.contains("••••••••") || f.masked.ends_with("(key block hidden)"),
            "a finding is shown unmasked"
        );
    }
});
