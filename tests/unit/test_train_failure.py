"""Settling a failed training launch: retryable failures fail the job, the run's own
failures become a failed run.json (a row of the tables)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from segscale.study import HISTORY_COLUMNS
from segscale.train import failure


@pytest.mark.parametrize(("code", "recorded", "retry"), [
    (75, None, True),  # preempted or time limit: resume from the checkpoint
    (137, None, True),  # a rank killed by SIGKILL
    (143, None, True),  # SIGTERM from outside
    (1, {"status": "failed", "error": "HorovodInternalError: ring broken"}, True),
    (1, {"status": "failed", "error": "ValueError: hparams.batch_size: 64 exceeds"}, False),
    (1, None, False),
    (2, None, False),  # bad arguments: a retry cannot help
])
def test_what_a_retry_can_fix(code, recorded, retry):
    assert failure.retryable(code, recorded) is retry


def test_reason_prefers_rank_zeros_error():
    recorded = {"status": "failed", "error": "RuntimeError: boom"}
    assert failure.failure_reason(1, recorded) == "RuntimeError: boom"
    assert failure.failure_reason(3, None) == \
        "the training launch exited with code 3; see the job's train.log"


def _main(out, code):
    return failure.main(["--exit-code", str(code), "--out", str(out), "--dataset", "d",
                         "--arch", "unet", "--policy", "gradual", "--seed", "2", "--ranks",
                         "4", "--hparams", '{"epochs": 7}'])


def test_own_failure_is_recorded_and_the_job_succeeds(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"status": "failed",
                                              "error": "RuntimeError: builder exploded"}))
    assert _main(out, 1) == 0
    record = json.loads((out / "run.json").read_text())
    assert (record["status"], record["error"]) == ("failed", "RuntimeError: builder exploded")
    assert (record["n_ranks"], record["repeat"], record["epochs_planned"]) == (4, 2, 7)
    assert record["hparams"]["epochs"] == 7 and record["policy"] == "gradual"
    assert list(pd.read_csv(out / "history.csv").columns) == list(HISTORY_COLUMNS)


def test_finished_epochs_are_kept(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "history.csv").write_text(",".join(HISTORY_COLUMNS) + "\n0,0.1,1,1,0.5,2,10,4\n")
    assert _main(out, 1) == 0
    assert len(pd.read_csv(out / "history.csv")) == 1


def test_retryable_failure_fails_the_job_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    assert _main(out, 75) == 75
    assert _main(out, 137) == 137
    assert not (out / "run.json").exists() and not (out / "history.csv").exists()


def test_success_is_left_alone(tmp_path):
    assert _main(tmp_path, 0) == 0
    assert list(tmp_path.iterdir()) == []
