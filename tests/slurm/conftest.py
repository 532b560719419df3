"""Session fixture: a running local Slurm cluster (scripts/local-cluster/slurm-up.sh).

If the cluster is already up (recorded slurmctld alive) it is reused and left running; if this
session starts it, scripts/local-cluster/slurm-down.sh stops it at the end.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from slurm_helpers import (
    SLURM_DOWN,
    SLURM_UP,
    Cluster,
    missing_binaries,
    parse_exports,
    slurmctld_running,
)


@pytest.fixture(scope="session")
def slurm() -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.skip("local Slurm needs root (daemons run as root, packages may need apt-get)")
    missing = missing_binaries()
    started_here = not slurmctld_running()
    # A cold start takes ~10 s; installing the Debian packages first takes minutes.
    timeout = 900 if missing else 180
    try:
        proc = subprocess.run(["bash", str(SLURM_UP), "--env"], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"slurm-up.sh did not finish in {timeout}s: {exc.stderr!r}")
    if proc.returncode != 0:
        if missing and missing_binaries():
            pytest.skip(f"Slurm packages missing ({', '.join(missing)}) and apt-get install "
                        f"failed:\n{proc.stderr[-2000:]}")
        pytest.fail(f"slurm-up.sh failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")
    env = dict(os.environ)
    env.update(parse_exports(proc.stdout))
    assert "SLURM_CONF" in env, proc.stdout
    # Tests must not inherit an enclosing job's allocation (e.g. pytest run inside sbatch).
    for key in [k for k in env if k.startswith(("SLURM_JOB", "SLURM_STEP", "SLURM_NTASKS"))]:
        del env[key]
    try:
        yield Cluster(env=env, started_here=started_here)
    finally:
        if started_here:
            subprocess.run(["bash", str(SLURM_DOWN)], capture_output=True, text=True,
                           timeout=120, check=False)
