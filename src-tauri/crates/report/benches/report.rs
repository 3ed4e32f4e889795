//! PDF report speed (docs/BENCHMARKS.md): export, verify and render a report of a 100,000-event
//! installation. Run with `cargo bench -p mandate-report --bench report`.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark setup")]

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

fn report(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (m, _clock) = mandate_report::sample::installation(dir.path(), 100_000).unwrap();
    let opts = mandate_report::PdfOptions::default();
    let built = mandate_report::build(&m, &opts, &mut |_, _| {}).unwrap();
    eprintln!(
        "100k-event report: {} events, {} bytes",
        built.data.events.len(),
        built.pdf.len()
    );
    let mut g = c.benchmark_group("pdf");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(60));
    g.bench_function("build_100k_events", |b| {
        b.iter(|| mandate_report::build(&m, &opts, &mut |_, _| {}).unwrap())
    });
    g.bench_function("render_only_100k_events", |b| {
        b.iter(|| mandate_report::render(&built.data, &mut |_, _| {}).unwrap())
    });
    g.finish();
}

criterion_group!(benches, report);
criterion_main!(benches);
