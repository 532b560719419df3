"""How long snakemake takes to plan the full thesis sweep (580 runs) against
planning the data stage alone of the same config: both dry runs alternate in one session.

    python benchmarks/bench_dag.py [--repeats 3]      (from the repository root)
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the test helper that stands tiny tasks in for the real ones
from tests.workflow.helpers import thesis_config_on_demo_data  # noqa: E402

SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def dry_run(workdir: Path, config: Path, target: str) -> tuple[float, int]:
    """Seconds to plan ``target`` and the number of jobs planned."""
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "-n",
           "--profile", str(REPO / "profiles" / "slurm"), "--configfile", str(config), "--",
           target]
    start = time.perf_counter()
    proc = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - start
    return seconds, int(re.search(r"^total\s+(\d+)$", proc.stdout, re.M)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = thesis_config_on_demo_data(tmp)
        full, data = [], []
        for _ in range(args.repeats):
            seconds, full_jobs = dry_run(tmp, path, "all")
            full.append(seconds)
            seconds, data_jobs = dry_run(tmp, path, "data")
            data.append(seconds)
    f, d = statistics.median(full), statistics.median(data)
    print(f"thesis sweep dry run ({full_jobs} jobs): {f:6.1f} s   data stage only "
          f"({data_jobs} jobs): {d:6.1f} s   ratio {f / d:4.1f}   ({args.repeats} repeats, "
          "medians)")
    print(f"dag_plan_s: {f:.1f}")


if __name__ == "__main__":
    main()
