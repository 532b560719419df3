"""Honest run records, without TensorFlow: per-rank dropout seeds, the weight-agreement
verdict and the refusal of two ranks on one GPU (segscale.train.record / .launch)."""

from __future__ import annotations

import numpy as np
import pytest

from segscale.study import RunRecord
from segscale.train.launch import GpuPlacement, gpu_conflict, gpu_placement
from segscale.train.record import rank_seed, rank_seeds, weights_agree


def test_weights_agree_names_the_ranks_that_differ():
    assert weights_agree(["a"]) is None
    assert weights_agree(["a", "a", "a"]) is None
    assert weights_agree(["a", "b"]) == (
        "ranks hold different weights after training: rank 1 differs from rank 0 (2 ranks)")
    assert weights_agree(["a", "a", "b", "c"]) == (
        "ranks hold different weights after training: ranks 2, 3 differ from rank 0 "
        "(4 ranks)")
    # rank 0 is the reference (its weights are the exported model): all others differ
    assert "ranks 1, 2 differ" in weights_agree(["x", "a", "a"])


def test_rank_seeds_differ_per_rank_and_are_reproducible():
    seeds = rank_seeds(0, 8)
    assert len(set(seeds)) == 8 and seeds == rank_seeds(0, 8)  # a resumed run: the same
    assert seeds[:2] == rank_seeds(0, 2)                         # independent of N
    assert rank_seeds(1, 8) != seeds and all(0 <= s < 2**32 for s in seeds)
    # documented derivation: the rank-th child of SeedSequence(seed)
    children = np.random.SeedSequence(7).spawn(3)
    assert [rank_seed(7, k) for k in range(3)] == [
        int(c.generate_state(1, np.uint32)[0]) for c in children]


def test_run_record_carries_rank_seeds():
    rec = RunRecord(status="failed", dataset="d", arch="unet", policy="none", n_ranks=2,
                    repeat=0, seed=0, hparams={}, epochs_planned=1, error="why")
    assert rec.to_dict()["rank_seeds"] is None
    rec.rank_seeds = rank_seeds(0, 2)
    assert rec.to_dict()["rank_seeds"] == rank_seeds(0, 2)


def _node(host: str, n: int, gpus: int, visible: str | None = None) -> list[GpuPlacement]:
    return [gpu_placement(host, k, n, gpus, visible) for k in range(n)]


def test_cpu_ranks_never_conflict():
    assert gpu_conflict(_node("n1", 4, 0)) is None
    assert gpu_placement("n1", 3, 4, 0).gpu is None


def test_one_rank_per_gpu_is_accepted():
    assert gpu_conflict(_node("n1", 2, 2) + _node("n2", 2, 2)) is None
    assert gpu_conflict(_node("n1", 2, 4)) is None           # spare GPUs are fine
    assert [p.gpu for p in _node("n1", 2, 2, "3,5")] == ["3", "5"]


def test_more_ranks_than_gpus_on_a_node_is_refused():
    message = gpu_conflict(_node("gpu-7", 3, 2))
    assert message is not None
    assert message.startswith("ranks 0 and 2 would share GPU 0 on gpu-7")
    assert "3 ranks on that node (local size) but 2 GPU(s) visible" in message
    assert "one rank per GPU" in message and "gpus_per_node" in message
    assert "--ntasks-per-node" in message
    # 3 + 1 placement across two nodes (Slurm without --ntasks-per-node)
    assert "gpu-a" in gpu_conflict(_node("gpu-a", 3, 2) + _node("gpu-b", 1, 2))
    # a job-wide CUDA_VISIBLE_DEVICES does not separate the ranks
    assert "share GPU 4" in gpu_conflict(_node("n1", 2, 1, "4"))


def test_a_launcher_binding_one_gpu_per_rank_is_accepted():
    # srun --ntasks-per-gpu=1: 2 ranks on the node, each sees 1 GPU, a different one
    bound = [gpu_placement("n1", 0, 2, 1, "0"), gpu_placement("n1", 1, 2, 1, "1")]
    assert gpu_conflict(bound) is None
    bound = [gpu_placement("n1", 0, 2, 1, "GPU-aa"), gpu_placement("n1", 1, 2, 1, "GPU-aa")]
    assert "share GPU GPU-aa" in gpu_conflict(bound)


@pytest.mark.parametrize("local_rank, expected", [(0, "0"), (1, "1"), (2, "0")])
def test_gpu_placement_picks_local_rank_modulo_gpus(local_rank, expected):
    assert gpu_placement("h", local_rank, 3, 2).gpu == expected
