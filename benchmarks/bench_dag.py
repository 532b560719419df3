"""How long snakemake takes to plan the full thesis sweep (580 runs, 1,700+ jobs) against
planning the data stage alone of the same config: both dry runs alternate in one session.

    python benchmarks/bench_dag.py [--repeats 3]      (from the repository root)
"""

from __future__ import annotations

import argparse
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


def dry_run(workdir: Path, config: Path, target: str) -> float:
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "-n",
           "--quiet", "--profile", str(REPO / "profiles" / "slurm"), "--configfile",
           str(config), "--", target]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, timeout=900)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = thesis_config_on_demo_data(tmp)
        full, data = [], []
        for _ in range(args.repeats):
            full.append(dry_run(tmp, path, "all"))
            data.append(dry_run(tmp, path, "data"))
    f, d = statistics.median(full), statistics.median(data)
    print(f"thesis sweep dry run (580 runs): {f:6.1f} s   data stage only: {d:6.1f} s   "
          f"ratio {f / d:4.1f}   ({args.repeats} repeats, medians)")


if __name__ == "__main__":
    main()
