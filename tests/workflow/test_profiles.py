"""`snakemake --profile slurm` (and local) as users type it, in a fresh checkout after set-up:
scripts/install-profile.sh puts the site templates where Snakemake looks for profile names,
never over an installed one, and Snakemake adds the workflow profile profiles/default itself."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .helpers import REPO, SNAKEMAKE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """The repository's files as a clone has them (tracked and new, nothing ignored)."""
    dest = tmp_path_factory.mktemp("checkout") / "segscale"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def environ(config_home: Path) -> dict[str, str]:
    env = dict(os.environ, XDG_CONFIG_HOME=str(config_home))
    env["PATH"] = f"{SNAKEMAKE.parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def install(checkout: Path, config_home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "scripts/install-profile.sh", *args], cwd=checkout,
                          env=environ(config_home), capture_output=True, text=True, timeout=60)


def dry_run(checkout: Path, config_home: Path, profile: str) -> subprocess.CompletedProcess:
    """The user's command, typed in the checkout (no -s, no --directory)."""
    return subprocess.run([str(SNAKEMAKE), "--profile", profile, "-n", "-p"], cwd=checkout,
                          env=environ(config_home), capture_output=True, text=True, timeout=300)


def test_profile_names_work_after_set_up(checkout, tmp_path):
    config_home = tmp_path / "config"
    before = dry_run(checkout, config_home, "slurm")
    assert before.returncode != 0 and "no profile.yaml" in before.stderr, before.stderr[-2000:]

    proc = install(checkout, config_home)
    assert proc.returncode == 0, proc.stderr
    for name in ("slurm", "local"):
        assert (config_home / "snakemake" / name / "profile.yaml").read_text() == \
            (checkout / "profiles" / name / "profile.yaml").read_text()
    assert not (config_home / "snakemake" / "default").exists()  # the workflow profile

    slurm = dry_run(checkout, config_home, "slurm")
    assert slurm.returncode == 0, slurm.stderr[-3000:]
    assert ("Using profiles slurm and workflow specific profile profiles/default"
            in slurm.stderr), slurm.stderr[-2000:]
    assert "srun -n 2 python -m segscale.train" in slurm.stdout  # the site's launcher
    assert "slurm_account=EDIT-account" in slurm.stdout  # the site's default-resources kept

    local = dry_run(checkout, config_home, "local")
    assert local.returncode == 0, local.stderr[-3000:]
    assert "horovodrun --gloo -n 2 python -m segscale.train" in local.stdout


def test_an_installed_profile_is_never_overwritten(checkout, tmp_path):
    config_home = tmp_path / "config"
    assert install(checkout, config_home, "slurm").returncode == 0
    installed = config_home / "snakemake" / "slurm" / "profile.yaml"
    edited = installed.read_text().replace("EDIT-account", "my-account")
    installed.write_text(edited)

    again = install(checkout, config_home)
    assert again.returncode == 0, again.stderr
    assert installed.read_text() == edited
    assert "exists and differs" in again.stdout and "kept" in again.stdout, again.stdout
    assert (config_home / "snakemake" / "local" / "profile.yaml").exists()  # the missing one

    shown = install(checkout, config_home, "-n", "--force", "slurm")
    assert shown.returncode == 0 and "would move" in shown.stdout, shown.stdout
    assert installed.read_text() == edited

    forced = install(checkout, config_home, "--force", "slurm")
    assert forced.returncode == 0, forced.stderr
    assert "EDIT-account" in installed.read_text()
    (backup,) = (config_home / "snakemake").glob("slurm.bak-*")
    assert (backup / "profile.yaml").read_text() == edited

    unknown = install(checkout, config_home, "default")
    assert unknown.returncode != 0 and "no template 'default'" in unknown.stderr
