"""GreScale in a real 2-rank Horovod training: the logged lr follows the thesis's stage split,
the ``thesis`` preset is expanded and recorded, and a split with no stabilisation epoch is
refused with the keys named."""

from __future__ import annotations

import math

import pytest
from train_helpers import TINY, run_train

from segscale.train.schedules import Schedule, epoch_learning_rates

pytestmark = [pytest.mark.horovod, pytest.mark.slow]


def test_grescale_two_ranks_logs_the_thesis_split(train_python, stores, tmp_path):
    # 8 epochs, W0 = 2: R0 = 6, 4/7 x 6 = 3.43 -> stabilisation share 3, decay 3 (epochs 5-7).
    # Warmup 1 (explicit, over the preset's 5): stages (1, 4, 3); plateau 1.0 x 0.01 x 2.
    hparams = {**TINY, "preset": "thesis", "epochs": 8, "warmup_epochs": 1,
               "base_warmup_epochs": 2, "stabilisation_factor": 1.0,
               "decay_coefficient": 0.5, "steps_per_epoch": 2}
    run = run_train(train_python, stores, tmp_path / "grescale", hparams, ranks=2,
                    policy="grescale", timeout=360)
    assert run.proc.returncode == 0, run.proc.stdout[-2000:] + run.proc.stderr[-4000:]
    man, hist = run.manifest, run.history
    assert man["status"] == "ok" and man["policy"] == "grescale" and man["n_ranks"] == 2
    recorded = man["hparams"]
    assert recorded["preset"] == "thesis" and recorded["optimizer"] == "sgd"  # from the preset
    assert (recorded["lr"], recorded["warmup_epochs"]) == (0.01, 1)          # explicit keys
    by_hand = [0.01, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02 * math.exp(-0.5), 0.02 * math.exp(-1)]
    assert hist["lr"].tolist() == pytest.approx(by_hand)
    schedule = Schedule("grescale", 0.01, 2, 8, 2, warmup_epochs=1, base_warmup_epochs=2,
                        stabilisation_factor=1.0, decay_coefficient=0.5)
    assert hist["lr"].tolist() == pytest.approx(epoch_learning_rates(schedule))


def test_grescale_without_stabilisation_is_refused(train_python, stores, tmp_path):
    hparams = {**TINY, "epochs": 3, "warmup_epochs": 3}
    run = run_train(train_python, stores, tmp_path / "refused", hparams, policy="grescale")
    assert run.proc.returncode != 0
    log = run.proc.stdout + run.proc.stderr
    assert "no stabilisation epoch" in log and "warmup_epochs" in log
    assert not (run.out / "history.csv").exists()
