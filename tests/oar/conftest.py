"""Session fixture: a running local OAR (scripts/local-cluster/oar-up.sh; root).

A running cluster is reused and left running; one this session started is stopped again
(scripts/local-cluster/oar-down.sh). Jobs are submitted by oar-up.sh's unprivileged user
(OAR refuses root), through ``as_user``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OAR_UP = REPO / "scripts" / "local-cluster" / "oar-up.sh"
OAR_DOWN = REPO / "scripts" / "local-cluster" / "oar-down.sh"
OAR_DIR = Path(os.environ.get("SEGSCALE_OAR_DIR", "/tmp/segscale-oar"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "oar: needs the local OAR cluster (scripts/local-cluster/oar-up.sh; root)")


@dataclass(frozen=True)
class Oar:
    user: str
    started_here: bool

    def as_user(self, *cmd: str, cwd: Path | None = None, timeout: float = 60,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``cmd`` as the submitting user, with the workflow environment first on PATH."""
        home = f"/home/{self.user}"
        path = f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"
        extra = [f"{k}={v}" for k, v in (env or {}).items()]
        return subprocess.run(["runuser", "-u", self.user, "--", "env", f"HOME={home}",
                               f"PATH={path}", *extra, *cmd], cwd=cwd, capture_output=True,
                              text=True, timeout=timeout, check=False)


def almighty_running() -> bool:
    try:
        pid = int((OAR_DIR / "run" / "almighty.pid").read_text().strip())
        return Path(f"/proc/{pid}/comm").read_text().strip() == "Almighty"
    except (OSError, ValueError):
        return False


@pytest.fixture(scope="session")
def oar() -> Iterator[Oar]:
    if os.geteuid() != 0:
        pytest.skip("the local OAR needs root (daemons, packages, the submitting user)")
    started_here = not almighty_running()
    try:  # a cold start takes ~5 s; installing the packages first ~15 s
        proc = subprocess.run(["bash", str(OAR_UP), "--env"], capture_output=True, text=True,
                              timeout=600, check=False)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"oar-up.sh did not finish: {exc.stderr!r}")
    if proc.returncode != 0:
        pytest.fail(f"oar-up.sh failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")
    exports = dict(line[len("export "):].split("=", 1) for line in proc.stdout.splitlines()
                   if line.startswith("export ") and "=" in line)
    try:
        yield Oar(user=exports["SEGSCALE_OAR_USER"], started_here=started_here)
    finally:
        if started_here:
            subprocess.run(["bash", str(OAR_DOWN)], capture_output=True, text=True,
                           timeout=120, check=False)
