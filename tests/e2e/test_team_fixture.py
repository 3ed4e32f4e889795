"""The team fixture cleans up after itself even when starting the team fails part-way: a
failure after the PostgreSQL cluster is up (here `mandate server init` cannot run) must not
leave the cluster running or its folder behind, since the fixture's teardown never runs then.
(A cluster leaked that way kept running for hours on a shared CI machine.)"""

import os
import subprocess

import pytest

import team_fixtures


def clusters_running():
    out = subprocess.run(["pgrep", "-af", "mandate-e2e-pg-"], capture_output=True, text=True).stdout
    return {line.split(" -D ", 1)[1].split()[0] for line in out.splitlines() if " -D " in line}


def test_a_team_that_fails_to_start_leaves_no_postgresql_running(tmp_path, monkeypatch):
    if os.geteuid() != 0:
        raise AssertionError("the team e2e tests start PostgreSQL as its own user: run them as root (CI does)")
    before = clusters_running()
    made = []
    real = team_fixtures.PgCluster

    def tracked():
        c = real()
        made.append(c)
        return c

    monkeypatch.setattr(team_fixtures, "PgCluster", tracked)
    monkeypatch.setattr(team_fixtures, "CLI", str(tmp_path / "no-such-mandate"))
    with pytest.raises(FileNotFoundError):
        team_fixtures.TeamServer(str(tmp_path))
    assert len(made) == 1, "the cluster was started before the failing step"
    cluster = made[0]
    assert not os.path.exists(cluster.dir), f"{cluster.dir} was left behind"
    assert clusters_running() - before == set(), "a PostgreSQL cluster was left running"
