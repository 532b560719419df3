"""Running snakemake from tests: always in a scratch directory, always with a timeout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
TEST_CONFIG = REPO / ".test" / "config" / "config.yaml"


def snakemake(workdir: Path, *args: str, timeout: float = 600,
              env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the repository's Snakefile with ``workdir`` as working directory."""
    environ = dict(os.environ, **(env or {}))
    # The rules call `python -m segscale...`: the workflow environment must come first.
    environ["PATH"] = f"{SNAKEMAKE.parent}{os.pathsep}{environ.get('PATH', '')}"
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=environ)


def thesis_config_on_demo_data(folder: Path) -> Path:
    """config/thesis.yaml with its dataset roots pointed at tiny generated tasks in
    ``folder``: the full study's DAG can then be planned without the real data."""
    import yaml

    from segscale.data.demo import generate

    config = yaml.safe_load((REPO / "config" / "thesis.yaml").read_text())
    for name, kind in (("brats", "brats"), ("lasc", "heart")):
        generate(kind, folder / name, n_train=3, n_test=0)
        config["datasets"][name]["root"] = str(folder / name)
    path = folder / "thesis.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
