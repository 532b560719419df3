"""The strategy layer's pure parts, without TensorFlow: the object collectives built from a
sum-allreduce, the rendezvous that gives tf-collective workers their TF_CONFIG, and the local
spawn launcher (real processes)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from segscale.train import spawn
from segscale.train.strategies import base, ps, rendezvous


def simulate(size: int, contribute):
    """Run ``contribute(rank, allreduce_sum)`` for ``size`` ranks in threads, with a real
    sum-allreduce between them (a barrier per call); returns every rank's result."""
    barrier = threading.Barrier(size)
    inbox: dict[int, np.ndarray] = {}
    results: dict[int, object] = {}

    def allreduce_sum_for(rank):
        def allreduce_sum(array):
            inbox[rank] = np.asarray(array, dtype=np.float64)
            barrier.wait()
            total = sum(inbox[k] for k in range(size))
            barrier.wait()
            return total
        return allreduce_sum

    def worker(rank):
        results[rank] = contribute(rank, allreduce_sum_for(rank))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return [results[k] for k in range(size)]


@given(st.lists(st.one_of(st.text(max_size=40), st.integers(), st.none(),
                          st.lists(st.floats(allow_nan=False), max_size=4)),
                min_size=1, max_size=4))
def test_allgather_object_by_sum_returns_every_rank_object_in_order(objects):
    size = len(objects)
    got = simulate(size, lambda r, s: base.allgather_object_by_sum(r, size, objects[r], s))
    assert all(g == objects for g in got)


def test_gather_by_sum_is_exact_for_nan_and_inf():
    values = [np.array([1.5, math.nan]), np.array([-math.inf, 3.0]), np.array([0.1, 0.2])]
    got = simulate(3, lambda r, s: base.gather_by_sum(r, 3, values[r], s).max(axis=0))
    for row in got:
        assert math.isnan(row[1]) and row[0] == 1.5  # max with NaN is NaN, as np.max


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, (0, 1)),
    ({"SEGSCALE_RANK": "1", "SEGSCALE_SIZE": "2"}, (1, 2)),
    ({"SLURM_PROCID": "3", "SLURM_NTASKS": "4"}, (3, 4)),
    ({"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2", "SLURM_NTASKS": "1"}, (0, 2)),
])
def test_rank_and_size_from_any_launcher(environ, expected):
    assert rendezvous.rank_and_size(environ) == expected


def test_rank_outside_the_size_is_refused():
    with pytest.raises(ValueError, match="rank 2 is outside the launcher's 2 ranks"):
        rendezvous.rank_and_size({"SEGSCALE_RANK": "2", "SEGSCALE_SIZE": "2"})


@pytest.mark.parametrize(("environ", "expected"), [
    ({"SEGSCALE_LAUNCH_ID": "spawn-1", "SLURM_JOB_ID": "9"}, "spawn-1"),
    ({"SLURM_JOB_ID": "9", "SLURM_STEP_ID": "0"}, "slurm-9.0"),
    ({"OMPI_MCA_ess_base_jobid": "2673"}, "mpi-2673"),
    ({"HOROVOD_GLOO_RENDEZVOUS_ADDR": "h", "HOROVOD_GLOO_RENDEZVOUS_PORT": "5"},
     "horovodrun-h-5"),
])
def test_launch_id_tells_launches_apart(environ, expected):
    assert rendezvous.launch_id(environ) == expected


def test_unknown_launcher_is_named():
    with pytest.raises(ValueError, match="segscale.train.spawn"):
        rendezvous.launch_id({"SLURM_JOB_ID": "9"})  # sbatch's shell, not an srun step


def test_agree_gives_every_rank_the_same_worker_list(tmp_path):
    addresses = ["a:1", "b:2", "a:3"]
    got = simulate(3, lambda r, _s: rendezvous.agree(tmp_path / "x", r, 3, addresses[r], 10,
                                                      0.01))
    assert got == [addresses] * 3
    assert rendezvous.tf_config(addresses, 2) == {
        "cluster": {"worker": addresses}, "task": {"type": "worker", "index": 2}}
    # two emulated nodes on one host are told apart by the scheduler's node names
    assert [rendezvous.local_rank_and_size(["n1", "n2", "n1"], r) for r in range(3)] == \
        [(0, 2), (0, 1), (1, 2)]


def test_agree_names_the_missing_ranks(tmp_path):
    with pytest.raises(TimeoutError, match=r"rank\(s\) \[1, 2\] of 3"):
        rendezvous.agree(tmp_path, 0, 3, "a:1", timeout_s=0.2, poll_s=0.05)


def test_join_sets_tf_config(tmp_path, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", "stale")  # restored (removed) after the test
    environ = {"SEGSCALE_RANK": "0", "SEGSCALE_SIZE": "1"}
    assert rendezvous.join(tmp_path, environ)[:2] == (0, 1)
    assert "TF_CONFIG" not in os.environ  # one worker: a local strategy
    (tmp_path / ".rendezvous" / "l").mkdir(parents=True)
    (tmp_path / ".rendezvous" / "l" / "rank1").write_text("other:9 node2")
    rank, size, addresses, nodes = rendezvous.join(
        tmp_path, {"SEGSCALE_RANK": "0", "SEGSCALE_SIZE": "2", "SEGSCALE_LAUNCH_ID": "l",
                   "SLURMD_NODENAME": "node1"})
    config = json.loads(os.environ["TF_CONFIG"])
    assert (rank, size) == (0, 2) and addresses[1] == "other:9" and nodes[1] == "node2"
    assert config["cluster"]["worker"] == addresses and config["task"]["index"] == 0
    assert nodes[0] == "node1"


# ---- spawn: real processes ------------------------------------------------------------------

RANK = """
import os, sys, time
rank = int(os.environ["SEGSCALE_RANK"])
line = f"{rank} {os.environ['SEGSCALE_SIZE']} {os.environ['SEGSCALE_LAUNCH_ID']}\\n"
os.write(1, line.encode())  # one write: lines of different ranks never interleave
code = CODES[rank]
time.sleep(0 if code is not None else 60)
sys.exit(code or 0)
"""


def run_spawn(codes, ranks):
    return subprocess.run([sys.executable, "-m", "segscale.train.spawn", "-n", str(ranks),
                           sys.executable, "-c", RANK.replace("CODES", repr(codes))],
                          capture_output=True, text=True, timeout=60)


def test_spawn_gives_each_rank_its_rank_and_one_launch_id():
    proc = run_spawn([0, 0, 0], 3)
    assert proc.returncode == 0, proc.stderr
    lines = sorted(proc.stdout.split("\n")[:3])
    assert [ln.split()[:2] for ln in lines] == [["0", "3"], ["1", "3"], ["2", "3"]]
    assert len({ln.split()[2] for ln in lines}) == 1


def test_a_failed_rank_stops_the_others_and_gives_the_status():
    t0 = time.monotonic()
    proc = run_spawn([None, 3], 2)  # rank 0 would wait in a collective forever
    assert proc.returncode == 3 and time.monotonic() - t0 < 30
    assert "rank 1 failed (exit 3): stopping the other ranks" in proc.stderr


def test_preempted_ranks_make_the_launch_preempted():
    assert run_spawn([75, 75], 2).returncode == 75


@pytest.mark.parametrize(("codes", "first", "expected"), [
    ([0, 0], None, 0), ([75, 0], None, 75), ([75, 137], 137, 137), ([1, 75], 1, 1)])
def test_launch_status(codes, first, expected):
    assert spawn.launch_status(codes, first) == expected


def test_launchers_refuse_a_missing_command_and_name_an_unstartable_one(tmp_path):
    """segscale.cli.run_command, shared by spawn and the OAR relay."""
    for module in ("segscale.train.spawn", "segscale.oar.job"):
        extra = ["-n", "2"] if module.endswith("spawn") else []
        none = subprocess.run([sys.executable, "-m", module, *extra, "--"],
                              capture_output=True, text=True, timeout=60)
        assert none.returncode == 2 and f"{module}: no command to run" in none.stderr
        gone = subprocess.run([sys.executable, "-m", module, *extra, str(tmp_path / "nope")],
                              capture_output=True, text=True, timeout=60)
        assert gone.returncode == 127 and f"{module}: cannot run" in gone.stderr


# ---- tf-ps: roles from the rendezvous ---------------------------------------------------

def test_ps_roles_on_one_node():
    # 4 processes, 1 ps: workers take the lowest ranks, then the chief, then the ps
    assert ps.assign_roles(["a"] * 4, 1) == [("worker", 0), ("worker", 1), ("chief", 0),
                                             ("ps", 0)]
    assert ps.role_names(ps.assign_roles(["a"] * 4, 1)) == ["worker0", "worker1", "chief",
                                                           "ps0"]


def test_ps_workers_spread_round_robin_over_uneven_nodes():
    # nodes a (ranks 0-2) and b (3-4), 1 ps: 3 workers taken a, b, a -> ranks 0, 3, 1;
    # the chief is rank 2 (lowest left), the ps rank 4
    assert ps.assign_roles(["a", "a", "a", "b", "b"], 1) == [
        ("worker", 0), ("worker", 1), ("chief", 0), ("worker", 2), ("ps", 0)]
    # a (0-1), b (2-5), 2 ps: 3 workers a, b, a -> 0, 2, 1; chief 3, ps 4 and 5
    assert ps.assign_roles(["a", "a", "b", "b", "b", "b"], 2) == [
        ("worker", 0), ("worker", 1), ("worker", 2), ("chief", 0), ("ps", 0), ("ps", 1)]


def test_ps_tasks_leaving_no_worker_are_refused():
    with pytest.raises(ValueError, match=r"3 processes leave no worker with ps_tasks 2"):
        ps.assign_roles(["a"] * 3, 2)
    with pytest.raises(ValueError, match="ps_tasks"):
        ps.check_processes(2, 1)
    with pytest.raises(ValueError, match="at least 1"):
        ps.assign_roles(["a"] * 3, 0)
    ps.check_processes(3, 1)  # one worker is enough


def test_ps_tf_config_lists_each_role_in_rank_order():
    roles = ps.assign_roles(["a", "a", "a", "b", "b"], 1)
    addresses = [f"h{k}:1{k}" for k in range(5)]
    config = ps.tf_config(addresses, roles, 3)
    assert config == {"cluster": {"chief": ["h2:12"], "worker": ["h0:10", "h1:11", "h3:13"],
                                  "ps": ["h4:14"]},
                      "task": {"type": "worker", "index": 2}}


def test_ps_cluster_places_workers_by_node():
    nodes = ["a", "a", "a", "b", "b"]
    roles = ps.assign_roles(nodes, 1)
    where = [ps.Cluster(k, 5, [""] * 5, nodes, roles, 1, None) for k in range(5)]
    assert [c.local_worker() for c in where if c.role == "worker"] == [(0, 2), (1, 2),
                                                                       (0, 1)]
    assert where[2].details("2.15")["roles"] == ["worker0", "worker1", "chief", "worker2",
                                                 "ps0"]
    assert where[2].n_workers == 3


def test_ps_finish_tells_the_servers_and_collects_their_samples(tmp_path):
    folder = tmp_path / ".rendezvous" / "launch"
    folder.mkdir(parents=True)
    roles = ps.assign_roles(["a"] * 4, 1)
    cluster = ps.Cluster(2, 4, [""] * 4, ["a"] * 4, roles, 1, folder)
    for rank in (0, 1):  # rank 3 never hands its samples over
        ps.samples_path(folder, rank).write_text(json.dumps([{"time_s": float(rank)}]))
    written = {}
    ps.finish(cluster, 75, [{"time_s": 9.0}], tmp_path,
              lambda path, rows: written.setdefault(path.name, rows), timeout_s=0.5)
    assert written == {"rank0.csv": [{"time_s": 0.0}], "rank1.csv": [{"time_s": 1.0}],
                       "rank2.csv": [{"time_s": 9.0}], "rank3.csv": []}
    assert not folder.exists()


def test_workers_sharing_a_gpu_are_found_from_their_published_placements(tmp_path):
    """tf-ps: each worker publishes where it pinned itself; the coordinator reads the
    workers' (not the servers') and refuses two of a node on one GPU, as for Horovod."""
    from segscale.train.launch import GpuPlacement, gpu_conflict
    from segscale.train.strategies import ps

    roles = [("worker", 0), ("worker", 1), ("chief", 0), ("ps", 0)]
    for rank, gpu in ((0, "0"), (1, "0")):
        worker = ps.Cluster(rank, 4, ["h:1"] * 4, ["n1"] * 4, roles, 1, tmp_path)
        ps.publish_placement(worker, tuple(GpuPlacement("n1", 2, 1, gpu)))
    coordinator = ps.Cluster(2, 4, ["h:1"] * 4, ["n1"] * 4, roles, 1, tmp_path)
    placements = [GpuPlacement(*p) for p in ps.worker_placements(coordinator, timeout_s=1)]
    assert placements == [GpuPlacement("n1", 2, 1, "0")] * 2
    assert gpu_conflict(placements).startswith("ranks 0 and 1 would share GPU 0 on n1")
    (tmp_path / "placement-rank1.json").unlink()
    with pytest.raises(TimeoutError, match=r"worker 1 \(rank 1\)"):
        ps.worker_placements(coordinator, timeout_s=0.3, poll_s=0.05)
