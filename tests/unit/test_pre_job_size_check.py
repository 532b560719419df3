"""The workflow's pre-job check (common.smk check_parameters): a (dataset, arch) of the sweep
that cannot build at the dataset's size stops ``snakemake -n`` before any job, naming the
config keys; a size the model pads and crops back is accepted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
DEMO_CONFIG = REPO / "config" / "config.yaml"


def dry_run(tmp_path: Path, override: str) -> subprocess.CompletedProcess:
    """``snakemake -n`` of the demo config plus ``override`` (YAML), in ``tmp_path``."""
    config = tmp_path / "override.yaml"
    config.write_text(override)
    env = dict(os.environ, PATH=f"{SNAKEMAKE.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), "-n",
           "--cores", "1", "--configfile", str(DEMO_CONFIG), str(config)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)


@pytest.mark.parametrize("override, message", [
    ("sweep: {archs: [fcn]}\ndatasets: {demo-brats: {size: [16, 16]}}\n",
     "config archs.fcn x datasets.demo-brats (size [16, 16]): fcn: input 16x16 is smaller "
     "than 32 pixels"),
    ("archs: {unet: {model: {depth: 7, base_filters: 8}}}\n",
     "config archs.unet x datasets.demo-heart (size [64, 64]): unet: input 64x64 is smaller "
     "than 128 pixels"),
    ("archs: {fcn: {model: {depth: 3}}}\nsweep: {archs: [unet, fcn]}\n",
     "config archs.fcn x datasets.demo-heart (size [64, 64]): model: unknown option(s) "
     "['depth'] for fcn"),
    # the guideline loop's architectures are checked too, not only the sweep's
    ("sweep: {archs: [unet]}\nguideline: {archs: [fcn]}\n"
     "datasets: {demo-brats: {size: [16, 16]}}\n",
     "config archs.fcn x datasets.demo-brats (size [16, 16]): fcn: input 16x16 is smaller "
     "than 32 pixels"),
])
def test_unbuildable_model_stops_before_any_job(tmp_path, override, message):
    proc = dry_run(tmp_path, override)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr, proc.stderr[-3000:]
    assert "Job stats" not in proc.stdout


def test_size_fcn_pads_is_accepted(tmp_path):
    """240 x 240 (BRATS in the thesis) is not a multiple of 32: FCN pads it, the plan runs."""
    proc = dry_run(tmp_path, "sweep: {archs: [unet, fcn], datasets: [demo-brats]}\n"
                             "datasets: {demo-brats: {size: [240, 240]}}\n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rule train:" in proc.stdout
