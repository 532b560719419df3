"""Step planning (issue 11, equal work): global caps, the 1-GPU run's images at every N.

``plan_steps`` is pure; the numbers below are worked out by hand from its rule
(``steps = min(max(1, G // N), shard // batch)`` with ``G = min(cap, n_train // batch)``).
"""

from __future__ import annotations

import pytest

from segscale.train.config import plan_steps


@pytest.mark.parametrize("n_ranks, steps, images", [(1, 10, 50), (2, 5, 50), (4, 2, 40)])
def test_a_cap_of_10_global_steps(n_ranks, steps, images):
    """400 slices, batch 5 (one GPU could take 80 steps), cap 10 global steps: 50 images on
    1 and 2 GPUs; 4 GPUs cannot split 10 steps, so round down to 2 each (40) and say so."""
    plan = plan_steps(400, 40, 5, n_ranks, steps_per_epoch=10)
    assert (plan.steps, plan.images_per_epoch, plan.images_per_epoch_1gpu) == (steps, images, 50)
    assert plan.equal_work is (images == 50)


def test_cap_divisible_by_every_n_is_exactly_equal():
    got = {n: plan_steps(400, 40, 5, n, steps_per_epoch=8) for n in (1, 2, 4, 8)}
    assert {n: p.steps for n, p in got.items()} == {1: 8, 2: 4, 4: 2, 8: 1}
    assert {p.images_per_epoch for p in got.values()} == {40}
    assert all(p.equal_work for p in got.values())


def test_cap_not_divisible_rounds_down_by_less_than_one_global_batch():
    plan = plan_steps(400, 40, 5, 4, steps_per_epoch=10)
    # 10 // 4 = 2 steps per rank: 4 x 5 x 2 = 40 images, the 1-GPU run's 50, never more
    assert (plan.steps, plan.images_per_epoch, plan.images_per_epoch_1gpu) == (2, 40, 50)
    assert not plan.equal_work
    assert 0 < plan.images_per_epoch_1gpu - plan.images_per_epoch < 4 * 5


def test_cap_below_n_still_takes_one_step_per_rank():
    plan = plan_steps(400, 40, 5, 4, steps_per_epoch=2)
    assert (plan.steps, plan.images_per_epoch, plan.images_per_epoch_1gpu) == (1, 20, 10)


def test_the_old_per_rank_cap_would_have_doubled_the_work():
    one, two = plan_steps(400, 40, 5, 1, 10), plan_steps(400, 40, 5, 2, 10)
    assert two.steps == 5 and two.images_per_epoch == one.images_per_epoch == 50


def test_no_cap_is_the_whole_store_within_one_global_batch():
    # 202 slices, batch 8: one GPU 25 steps (200 images); 2 ranks: shard 101 -> 12 steps
    one, two = plan_steps(202, 40, 8, 1), plan_steps(202, 40, 8, 2)
    assert (one.steps, one.images_per_epoch) == (25, 200)
    assert (two.steps, two.images_per_epoch, two.images_per_epoch_1gpu) == (12, 192, 200)
    four = plan_steps(202, 40, 8, 4)  # shard 50 -> 6 steps: 192
    assert (four.steps, four.images_per_epoch) == (6, 192)
    # divisible sizes: exactly equal
    assert {plan_steps(320, 40, 8, n).images_per_epoch for n in (1, 2, 4)} == {320}


def test_cap_above_the_store_is_the_store():
    plan = plan_steps(48, 16, 4, 2, steps_per_epoch=1000)
    assert (plan.steps, plan.images_per_epoch, plan.images_per_epoch_1gpu) == (6, 48, 48)


@pytest.mark.parametrize("n_ranks, cap, steps, images", [
    (1, None, 4, 30), (2, None, 2, 30), (3, None, 2, 30),  # whole shards, last batch partial
    (1, 2, 2, 16), (2, 2, 1, 16), (4, 2, 1, 28),           # 1 GPU 2 batches; N ranks >= 1
])
def test_validation_cap_is_global(n_ranks, cap, steps, images):
    plan = plan_steps(400, 30, 8, n_ranks, validation_steps=cap)
    assert (plan.val_steps, plan.val_images_per_epoch) == (steps, images)


def test_batch_larger_than_a_shard_is_refused():
    with pytest.raises(ValueError, match="hparams.batch_size: 8 exceeds this rank's shard of 7"):
        plan_steps(30, 10, 8, 4)
    with pytest.raises(ValueError, match="3 validation slices cannot feed 4 ranks"):
        plan_steps(400, 3, 8, 4)
