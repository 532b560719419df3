"""segscale.slurm_guard without a cluster: MinJobAge parsing, the executor's status command
rules, the refusal of squeue with a short MinJobAge, and the watchdog."""

from __future__ import annotations

import threading

import pytest

from segscale import slurm_guard as guard


@pytest.mark.parametrize(("text", "seconds"), [
    ("MinJobAge               = 300 sec\n", 300),
    ("Foo = 1\nMinJobAge = 1h\n", 3600),
    ("MinJobAge = 3600\n", 3600),
    ("MaxJobCount = 10000\n", None),
])
def test_min_job_age_from_scontrol(text, seconds):
    assert guard.parse_min_job_age(text) == seconds


@pytest.mark.parametrize(("requested", "age", "init", "sacct", "used"), [
    ("sacct", 300, 40, True, "sacct"),
    ("squeue", 3600, 40, True, "squeue"),
    ("squeue", 100, 40, True, "sacct"),     # below 3 x 40 s: the plugin falls back to sacct
    ("squeue", None, 1, True, "sacct"),     # MinJobAge unknown: sacct too
    ("squeue", 100, 40, False, "squeue"),   # no sacct at all
    ("sacct", None, 40, False, "squeue"),
    (None, 300, 40, True, "sacct"),
])
def test_effective_status_command_follows_the_plugin(requested, age, init, sacct, used):
    assert guard.effective_status_command(requested, age, init, sacct) == used


def test_squeue_with_a_short_min_job_age_is_refused():
    problem = guard.preflight("squeue", 120)
    assert "MinJobAge=120 s" in problem and "wait for it forever" in problem


def test_guard_interval_from_the_environment():
    assert guard.guard_interval({}) == guard.DEFAULT_INTERVAL_S
    assert guard.guard_interval({guard.GUARD_ENV: "0"}) == 0
    with pytest.raises(ValueError, match="SEGSCALE_SLURM_GUARD_S"):
        guard.guard_interval({guard.GUARD_ENV: "soon"})


def test_a_missing_tool_is_a_problem_not_a_crash(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert "cannot run" in guard.probe("sacct")


def test_watchdog_confirms_a_failure_then_reports_it_once():
    answers = iter([None, "down", None, "down", "down", "down"])
    reported, done = [], threading.Event()

    def on_failure(problem):
        reported.append(problem)
        done.set()

    dog = guard.Watchdog(lambda: next(answers), on_failure, interval_s=0.01, retry_s=0.01)
    dog.start()
    assert done.wait(5)
    dog.join(5)
    assert reported == ["down"] and not dog.is_alive()


def test_running_failure_names_the_jobs_left():
    text = guard.running_failure("sacct", "`sacct` failed", ["12", "13"], "uuid")
    assert "slurmdbd" in text and "12 13" in text and "--slurm-status-command squeue" in text
