#!/usr/bin/env python3
"""Write its part of docs/RELIABILITY.md (and the soak's figures) from one `scripts/reliability` run.

Only the block between its markers is rewritten; the file's other sections (other trials, kept by
hand or by their own harnesses) stay as they are.

Reads fuzz.jsonl, crash.json, power.jsonl and soak.jsonl when present (a part that was not run is
named as such, never guessed), and each part's PART.meta.json (when and from which commit
scripts/reliability ran it), judges each bar of issue 22, and draws the soak's latency and memory
over time with matplotlib into docs/reliability/. Prints the block it writes, so the figures are
on the terminal too. Run by scripts/reliability inside its venv.

Usage: report.py --results DIR --docs DOCS_DIR --commit SHA
"""

import argparse
import datetime
import json
import os
import platform
import statistics


def lines(path):
    if not os.path.exists(path):
        return None
    out = []
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def machine():
    cpu = "unknown CPU"
    try:
        for l in open("/proc/cpuinfo"):
            if l.startswith("model name"):
                cpu = l.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(open("/proc/meminfo").readline().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError):
        pass
    return f"{os.cpu_count()} cores ({cpu}){mem}, {platform.system()} {platform.release()}"


def yes(ok):
    return "met" if ok else "**missed**"


def fuzz_build(rows):
    profile = next((r["profile"] for r in rows or [] if "profile" in r), "release")
    if profile == "dev":
        return ("the smoke's build (`cargo fuzz --dev`: opt-level 1, debug assertions, "
                "AddressSanitizer), `FUZZ_PROFILE=dev`")
    return "release with debug assertions and AddressSanitizer"


def fuzz_section(rows):
    if rows is None:
        return ["Not run in this report's run.", ""]
    targets = [r for r in rows if "target" in r]
    total = sum(r["executions"] for r in targets)
    crashes = sum(r["crashes"] for r in targets)
    failed = [r["target"] for r in targets if r["exit"] != 0 or r["crashes"]]
    peak = max((r["peak_rss_mb"] for r in targets), default=0)

    def kind_result(key, fallback):
        # scripts/fuzz counts each kind of reproducer (timeout-, oom-); a run recorded before
        # it did can only say whether any target failed.
        if targets and all(key in r for r in targets):
            n = sum(r[key] for r in targets)
            return f"{n} reproducers of this kind: {yes(n == 0 and (key != 'ooms' or peak <= 512))}"
        if failed and fallback is False:
            return "not told apart in this run's data: a target failed (see crashes), so not shown met"
        return yes(fallback)

    out = [
        "| target | what it feeds | executions | seconds | peak memory | crashes |",
        "|---|---|---:|---:|---:|---:|",
    ]
    what = {
        "jws": "compact JWS splitter and parser; accepted ⇒ signed by the key (independent check)",
        "client_token": "the token endpoint's rules end to end (token, exchange, introspection, revocation, audit write) on a real SQLite installation; accepted ⇒ the agent's registered key signed the assertion",
        "dpop": "DPoP proofs at the token endpoint and at a resource; accepted ⇒ signed by its own jwk, right htm, iat, ath, jkt",
        "form": "form bodies of every OAuth request; no repeated single-valued parameter accepted",
        "bundle": "evidence bundles through the offline verifier; verified ⇒ only signed events",
        "checkpoint": "signed checkpoints (C2SP notes); verified ⇒ a genuinely signed checkpoint",
        "merkle_proofs": "RFC 9162 inclusion and consistency proofs; verified ⇒ exactly the tree's own proof",
        "pdf_bundle": "the evidence bundle attached to a PDF report (`mandate audit verify report.pdf`)",
        "scanner": "the credential scanner over .env, shell, YAML, TOML, JSON, Python, JS, INI, Dockerfile text; findings in bounds and masked",
        "broker_path": "proxied paths (confinement, action matching); passed ⇒ no dot, empty, encoded-slash or control segment",
        "attestation": "review attestations (DSSE envelope, in-toto statement), raw and built then mutated; opened ⇒ the registered attestor signed the PAE of exactly that payload, the review read is what it says, points within the bound",
        "mcp_message": "the MCP gateway's handling of one JSON-RPC line (masking, envelope, classification, list filtering, refusals); read ⇒ unique members, the tool or prompt checked is the one named, only granted list entries kept",
    }
    for r in targets:
        out.append(f"| `{r['target']}` | {what.get(r['target'], '')} | {r['executions']:,} | {r['seconds']} | "
                   f"{r['peak_rss_mb']} MB | {r['crashes']} |")
    out += [
        "",
        f"Total: **{total:,} executions**, {crashes} crashes"
        + (f" (failed: {', '.join(failed)})" if failed else "")
        + f"; the largest peak memory of any target was {peak} MB.",
        "",
        "| bar (issue 22 §1) | result |",
        "|---|---|",
        f"| at least 10 million executions in total | {total:,}: {yes(total >= 10_000_000)} |",
        f"| no crash (panic, sanitizer report or failed oracle) | {crashes} crashes: {yes(not crashes and not failed)} |",
        f"| no input slower than 2 s (`-timeout=2`) | {kind_result('timeouts', not failed)} |",
        f"| no allocation above 512 MB (`-rss_limit_mb=512 -malloc_limit_mb=512`) | peak {peak} MB: "
        f"{kind_result('ooms', not failed and peak <= 512)} |",
        "",
    ]
    return out


def crash_section(path):
    if not os.path.exists(path):
        return ["Not run in this report's run (`scripts/reliability crash`); an earlier run by",
                "`scripts/crash-trials` is in the hand-kept table further down, with its date and commit.", ""]
    try:
        r = json.load(open(path))
    except ValueError:
        return ["The run did not finish (crash.json holds no figures).", ""]
    out = [
        "| trials | failed trials | longest recovery | median recovery | tokens | revocations | inactive introspections | broker calls | registry changes | events | seed |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        f"| {r['trials']} | {r['failed_trials']} | {r['longest_recovery_ms']:.0f} ms | {r['median_recovery_ms']:.0f} ms | "
        f"{r['tokens']:,} | {r['revocations']:,} | {r['introspections_inactive']:,} | {r['proxied']:,} | "
        f"{r['registry_changes']:,} | {r['events']:,} | `{r['seed']}` |",
        "",
    ]
    if r["failures"]:
        out.append("Failures:")
        out += [f"- {f}" for f in r["failures"]]
        out.append("")
    out += [
        f"Bar: 100 trials, every check passing after every kill: "
        f"{yes(r['trials'] >= 100 and not r['failed_trials'] and not r['failures'])}.",
        "",
    ]
    return out


def power_section(rows):
    if rows is None:
        return ["Not run in this report's run.", ""]
    trials = [r for r in rows if "trial" in r]
    summary = next((r for r in rows if r.get("summary")), None)
    if not summary:
        return ["The run did not finish (no summary line).", ""]
    failures = [r for r in trials if not r["ok"]]
    out = [
        "| durability setting | trials | failures | tokens received | revocations acknowledged | members added (CLI) | broker calls answered | longest recovery |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| WAL, `synchronous=FULL` (the one Mandate uses) | {summary['trials']} | {summary['failures']} | "
        f"{summary['tokens_acked']:,} | {summary['revocations_acked']:,} | {summary['members_acked']:,} | "
        f"{summary['broker_acked']:,} | {summary['longest_recovery_s']} s |",
        "",
    ]
    if failures:
        out.append("Failures:")
        for r in failures:
            out.append(f"- trial {r['trial']}: " + "; ".join(r["problems"]))
        out.append("")
    out += [
        f"Bar: every check passes after every cut: {yes(not failures and summary['trials'] >= 20)}.",
        "",
    ]
    return out


def soak_section(rows, docs):
    if rows is None:
        return ["Not run in this report's run.", ""], {}
    minutes = [r for r in rows if "minute" in r]
    samples = [r for r in rows if "sample_s" in r]
    summary = next((r for r in rows if r.get("summary") == "soak"), {})
    ev = next((r for r in rows if "events_before" in r), {})
    ver = next((r for r in rows if "verify_problems" in r), {})
    if not minutes or not samples or not summary:
        return ["The soak did not finish (missing minutes, samples or summary).", ""], {}
    secs = summary["seconds"]
    warm = min(600, secs // 3)  # warm-up: the first 10 minutes (a third of a short run)
    after = [s for s in samples if s["sample_s"] >= warm]
    rss0 = after[0]["rss_kb"]
    rss_max = max(s["rss_kb"] for s in after)
    rss_end = after[-1]["rss_kb"]
    growth = (rss_max - rss0) / rss0 * 100
    fds0 = statistics.median(s["fds"] for s in after[:6])
    fds_end = statistics.median(s["fds"] for s in after[-6:])
    fd_max = max(s["fds"] for s in after)
    # The total moves with the load generator's pool (one descriptor per connection it holds
    # open); the server's own descriptors are the rest, and what is left once the generator
    # has closed its connections (`after_load`) against the first sample, taken before any
    # request (and against the own count after warm-up), is what would show a leak. Older runs
    # sampled only the total.
    split = all("fds_own" in s for s in samples)
    closed = next((r for r in rows if r.get("after_load")), None)
    if split:
        own0 = statistics.median(s["fds_own"] for s in after[:6])
        own_end = statistics.median(s["fds_own"] for s in after[-6:])
        own_max = max(s["fds_own"] for s in after)
        conn_min = min(s["fds_client_conns"] for s in after)
        conn_max = max(s["fds_client_conns"] for s in after)
    half = [s for s in after if s["sample_s"] >= (warm + secs) / 2]
    wal_max_first = max(s["wal_bytes"] for s in after if s["sample_s"] < (warm + secs) / 2)
    wal_max_second = max(s["wal_bytes"] for s in half) if half else 0
    wal_max = max(s["wal_bytes"] for s in samples)
    late = [m for m in minutes if (m["minute"] - 1) * 60 >= warm and m["requests"] > 0]
    p99s = [m["p99_ms"] for m in late]
    p99_med = round(statistics.median(p99s), 2)
    p99_worst = max(p99s)
    db0 = samples[0]["db_bytes"] + samples[0]["wal_bytes"]
    db1 = samples[-1]["db_bytes"] + samples[-1]["wal_bytes"]
    events = ev.get("events_after", 0) - ev.get("events_before", 0)
    per_million = (db1 - db0) / events * 1e6 / 2**20 if events else 0
    bars = {
        "memory": growth < 10,
        # Its own descriptors after warm-up (its database readers opened, its upstream pool
        # filled) are the level: no higher at the end, nor once the clients have gone.
        "fds": (own_end <= own0 + 2 and (closed is None or closed["fds"] <= own0 + 2))
        if split
        else fds_end <= fds0 + 2,
        "wal": wal_max_second <= max(wal_max_first * 1.5, 8 * 2**20),
        "p99": p99_worst <= 3 * p99_med,
    }
    fd_text = f"{fds0:.0f} open after warm-up, {fds_end:.0f} at the end (at most {fd_max})"
    if split:
        fd_text = (
            f"the server's own (all but the client connections it accepted): {own0:.0f} after warm-up, "
            f"{own_end:.0f} at the end, at most {own_max}; client connections {conn_min} to {conn_max} "
            f"(all descriptors {fd_text}); {samples[0]['fds']} before the first request"
        )
        if closed is not None:
            fd_text += (f", {closed['fds']} 3 s after the generator closed its connections "
                        f"({closed['fds_client_conns']} of them still open)")
    # Older runs sampled resident memory only; newer ones also its kinds and the thread count
    # (each thread carries allocator caches of its own, so a burst of threads shows in memory).
    mem_more = ""
    if all("threads" in s for s in after):
        anon0, anon_max = after[0]["rss_anon_kb"], max(s["rss_anon_kb"] for s in after)
        mem_more = (
            f" (anonymous, the heaps: {anon0 / 1024:.0f} MB after warm-up, at most {anon_max / 1024:.0f} MB; "
            f"file-backed, the program's code: {after[-1]['rss_file_kb'] / 1024:.0f} MB at the end; "
            f"server threads {after[0]['threads']} after warm-up, {min(s['threads'] for s in after)} to "
            f"{max(s['threads'] for s in after)})"
        )
    figs = plot(minutes, samples, docs, warm)
    out = [
        f"{secs // 60} minutes at {summary['rate']:.0f} requests/s asked, {summary['achieved_per_s']:.0f}/s achieved: "
        f"{summary['requests']:,} requests, {summary['errors']:,} errors; overall p50 {summary['p50_ms']} ms, "
        f"p99 {summary['p99_ms']} ms, max {summary['max_ms']} ms. {events:,} audit events were written; "
        f"`mandate audit verify` afterwards found {ver.get('verify_problems', 'an unknown number of')} problems.",
        "",
    ]
    failures = [r for r in rows if "failure" in r]
    if failures:
        out += [f"The failures, as the generator saw them (the first {len(failures)}):", ""]
        out += [f"- at {f['at_s']:.0f} s, {f['kind']}: `{f['failure']}`" for f in failures]
        out.append("")
    elif summary["errors"]:
        out += ["The generator of this run counted its failures without describing them.", ""]
    out += [
        "| bar (issue 22 §4) | measured | result |",
        "|---|---|---|",
        f"| 30 minutes at 500 requests/s | {secs / 60:.0f} minutes, {summary['achieved_per_s']:.0f} requests/s achieved of {summary['rate']:.0f} asked | {yes(secs >= 1800 and summary['achieved_per_s'] >= 0.95 * 500)} |",
        f"| memory flat after warm-up (< 10 % growth over the last {(secs - warm) // 60} minutes) | RSS {rss0 / 1024:.0f} MB after warm-up, at most {rss_max / 1024:.0f} MB, {rss_end / 1024:.0f} MB at the end: {growth:+.1f} %{mem_more} | {yes(bars['memory'])} |",
        f"| no file-descriptor growth | {fd_text} | {yes(bars['fds'])} |",
        f"| the WAL checkpointed, not growing without bound | largest WAL {wal_max / 2**20:.1f} MB; {wal_max_first / 2**20:.1f} MB at most in the first half after warm-up, {wal_max_second / 2**20:.1f} MB in the second | {yes(bars['wal'])} |",
        f"| p99 steady | per-minute p99 after warm-up: median {p99_med} ms, worst {p99_worst} ms | {yes(bars['p99'])} |",
        f"| disk growth per million events | {per_million:.0f} MB (database + WAL, {events:,} events) | (a figure, no bar) |",
        "",
    ]
    for f in figs:
        out.append(f"![{f[1]}](reliability/{f[0]})")
        out.append("")
    return out, bars


def plot(minutes, samples, docs, warm):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = os.path.join(docs, "reliability")
    os.makedirs(folder, exist_ok=True)
    figs = []
    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=110)
    x = [m["minute"] for m in minutes]
    ax.plot(x, [m["p50_ms"] for m in minutes], marker="o", ms=3, label="p50")
    ax.plot(x, [m["p99_ms"] for m in minutes], marker="o", ms=3, label="p99")
    ax.axvline(warm / 60, color="grey", ls=":", lw=1)
    ax.set_xlabel("minute")
    ax.set_ylabel("latency (ms, from the scheduled send)")
    ax.set_title("Soak: latency per minute, mixed traffic")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(folder, "soak-latency.png"))
    plt.close(fig)
    figs.append(("soak-latency.png", "Soak latency: p50 and p99 per minute"))

    fig, ax = plt.subplots(figsize=(8, 4.4), dpi=110)
    t = [s["sample_s"] / 60 for s in samples]
    ax.plot(t, [s["rss_kb"] / 1024 for s in samples], label="resident memory (MB)")
    ax.plot(t, [s["wal_bytes"] / 2**20 for s in samples], label="WAL (MB)")
    ax.set_xlabel("minute")
    ax.set_ylabel("MB")
    ax2 = ax.twinx()
    ax2.plot(t, [s["fds"] for s in samples], color="tab:green", lw=0.8, label="open descriptors")
    if all("fds_own" in s for s in samples):
        ax2.plot(t, [s["fds_own"] for s in samples], color="tab:olive", lw=0.8, ls="--",
                 label="descriptors, without client connections")
    if all("threads" in s for s in samples):
        ax2.plot(t, [s["threads"] for s in samples], color="tab:purple", lw=0.8, ls=":",
                 label="server threads")
    ax2.set_ylabel("open descriptors, threads")
    ax.axvline(warm / 60, color="grey", ls=":", lw=1)
    ax.set_ylim(bottom=0)
    ax2.set_ylim(bottom=0)
    ax.set_title("Soak: server memory, WAL and descriptors")
    ax.grid(alpha=0.3)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    # Below the axes: inside, it hid the lines it names.
    ax.legend(h1 + h2, l1 + l2, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(folder, "soak-memory.png"))
    plt.close(fig)
    figs.append(("soak-memory.png", "Soak: resident memory, WAL size and open descriptors"))
    return figs


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--results", required=True)
    p.add_argument("--docs", required=True)
    p.add_argument("--commit", required=True)
    p.add_argument("--note", default="", help="how the run was made, when it departs from the default (e.g. parts run at once)")
    a = p.parse_args()
    fuzz = lines(os.path.join(a.results, "fuzz.jsonl"))
    power = lines(os.path.join(a.results, "power.jsonl"))
    crash = crash_section(os.path.join(a.results, "crash.json"))
    soak, _ = soak_section(lines(os.path.join(a.results, "soak.jsonl")), a.docs)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    runs = []
    for part, name in [("fuzz", "fuzzing"), ("crash", "crash trials"), ("power", "power cuts"), ("soak", "soak")]:
        m = os.path.join(a.results, f"{part}.meta.json")
        if os.path.exists(m):
            m = json.load(open(m))
            runs.append(f"| {name} | {m['started']} to {m['ended']}, commit `{m['commit']}` |")
    doc = [
        BEGIN,
        "## Long runs: fuzzing, crash and power-cut trials, the soak (issue 22, parts 1 to 4)",
        "",
        "Written by `scripts/reliability` from one dated run on the machine named (this part of the",
        "file only, between its markers; the rest is kept); the history of earlier runs is in git.",
        "",
        "| run | |",
        "|---|---|",
        f"| date | {date} |",
        f"| commit | `{a.commit}` |",
        *runs,
        f"| machine | {machine()}, shared with other work; every run under `nice` (10, or 19 where the conditions say) |",
        f"| build | release (`cargo build --release`); fuzz targets: {fuzz_build(fuzz)} |",
        *([f"| conditions | {a.note} |"] if a.note else []),
        "",
        "### How to reproduce",
        "",
        "```sh",
        "scripts/reliability                 # all of the below, then this file (hours)",
        "scripts/reliability fuzz            # or one part: fuzz, crash, power, soak",
        "scripts/fuzz --smoke 20             # what CI runs: every corpus replayed, 20 s per target",
        "RELIABILITY_OUT=DIR scripts/reliability soak   # add a part to an earlier run's results",
        "```",
        "",
        "The power-cut trials need root, FUSE and LazyFS's source (`scripts/lazyfs` says where it",
        "goes); everything else needs only what `scripts/test` installs.",
        "",
        "### 1. Fuzzing (libFuzzer)",
        "",
        "`src-tauri/fuzz` (outside the workspace; `cargo fuzz`, AddressSanitizer, on stable Rust with",
        "`RUSTC_BOOTSTRAP=1`). Each target asserts an oracle besides \"no panic\". The committed corpora",
        "(`src-tauri/fuzz/corpus`) are replayed by CI, which also runs each target for 20 s.",
        "",
        *fuzz_section(fuzz),
        "### 2. Crash trials (`kill -9`)",
        "",
        "`scripts/crash-trials` (the harness is `tests/trials.rs`, which CI runs three times on the",
        "debug build as `audit_crash`): the release `mandate serve` under mixed load (tokens over HTTP",
        "and from `mandate token`, introspections, revocations, broker calls to a loopback upstream,",
        "registry changes from the CLI), killed with `kill -9` at a random moment and restarted. Then:",
        "`mandate audit verify` passes; every answer a client received has its committed event; every",
        "acknowledged revocation still holds and every acknowledged registry change is there.",
        "Recovery: from spawning the restarted server to its first answer.",
        "",
        *crash,
        "### 3. Power-cut trials (LazyFS)",
        "",
        "`tests/reliability/power_cut.py`: the release `mandate serve` with its data folder on LazyFS,",
        "under mixed load (token requests, introspections, revocations, broker calls to a local",
        "upstream, `mandate member add` from the CLI). At a random moment every Mandate process is",
        "frozen (SIGSTOP), LazyFS drops every write that was not fsynced (`lazyfs::clear-cache`), the",
        "processes are killed and LazyFS is remounted, so only what reached the disk survives. Then:",
        "`mandate audit verify` and SQLite's integrity check pass; every token a client received has",
        "its `token.issued` event; every acknowledged revocation has its `token.revoked` event and",
        "still introspects as inactive once the endpoint is back; every member the CLI reported added",
        "is there; no broker call was answered without its `proxy.allowed` event; the endpoint serves",
        "again (recovery: from starting `mandate serve` to its first token).",
        "",
        "Two allowances for LazyFS itself: the cut also deletes SQLite's wal-index",
        "(`mandate.db-shm`, shared memory that a real power cut wipes and SQLite rebuilds from the",
        "WAL), and the checks read a copy of the surviving database and WAL. LazyFS mishandles the",
        "sparse writes SQLite grows that file with: reading it through the mount after a remount",
        "failed now and then with \"disk I/O error\" while the same files on the backing disk",
        "passed SQLite's integrity check.",
        "",
        *power_section(power),
        "Only `synchronous=FULL` is in use, and it is the only setting Mandate can run with (no option",
        "changes it). The weaker settings were measured before with a prototype on this class of",
        "machine (`SECURITY.md`: NORMAL lost acknowledged rows in 14 of 15 cuts, OFF lost the whole",
        "database); they were not run again here.",
        "",
        "### 4. Soak",
        "",
        "`loadgen soak` (`src-tauri/crates/server/examples/loadgen/soak.rs`) against a release",
        "`mandate serve --no-rate-limit` (the per-agent limit of 600 a minute would refuse most of one",
        "agent's load), open loop: of every 20 requests 10 token requests, 5 introspections, 2",
        "revocations, 1 JWKS read and 2 calls through the secret broker to a local upstream. Latency is",
        "measured from each request's scheduled send time, so a stall counts against every request it",
        "delays. The load generator runs on the same two cores as the server. Memory, descriptors and",
        "the database and WAL sizes are sampled every 10 s; the first 10 minutes (a third of a shorter",
        "run) are warm-up. Descriptors are counted in all and without the client connections the",
        "server accepted: the generator opens connections as the open loop needs them (up to 256",
        "idle ones kept), so the total follows its pool, not the server. The server's own are its",
        "files (the database, WAL and index once per pooled connection, the log, the lock), the",
        "listener, its D-Bus connections to the keychain, event and timer descriptors, and the",
        "broker's connections to the upstream (a pool that follows the proxied load). A last",
        "sample is taken 3 s after the generator closed its connections.",
        "",
        *soak,
        END,
    ]
    write(os.path.join(a.docs, "RELIABILITY.md"), doc)
    print("\n".join(doc))


BEGIN = "<!-- scripts/reliability: begin (generated; edit tests/reliability/report.py) -->"
END = "<!-- scripts/reliability: end -->"


def write(path, block):
    """Put the generated block into RELIABILITY.md, keeping every other section of the file.

    Replaces the block between the markers when there is one; otherwise adds it after the
    file's title and opening paragraph (or starts the file)."""
    text = "\n".join(block)
    if not os.path.exists(path):
        doc = "# Reliability: measured runs\n\n" + text + "\n"
    else:
        old = open(path).read()
        if BEGIN in old and END in old:
            doc = old[: old.index(BEGIN)] + text + old[old.index(END) + len(END):]
        else:
            first = old.find("\n## ")
            if first < 0:
                doc = old.rstrip("\n") + "\n\n" + text + "\n"
            else:
                doc = old[: first + 1] + text + "\n\n" + old[first + 1:]
    with open(path, "w") as f:
        f.write(doc)


if __name__ == "__main__":
    main()
