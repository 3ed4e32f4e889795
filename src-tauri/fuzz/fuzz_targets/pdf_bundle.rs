//! Reading the evidence bundle back out of a PDF report (`mandate_report::extract_bundle`, what
//! `mandate audit verify report.pdf` runs on a file anyone may hand over), seeded with a real
//! report. Bars: no panic, no input slower than 2 s, no allocation above 512 MB (a compressed
//! attachment that inflates without bound would fail the last).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bundle) = mandate_report::extract_bundle(data) {
        // What the CLI does next with it.
        let _ = mandate_core::audit::verify::check_bundle(&bundle, &Default::default());
    }
});
