"""Issue 12.3 on the local OAR: trainings that outlive their walltime come back on their own.

Through `snakemake --profile profiles/oar` with `-t idempotent` training jobs, the data stage
built beforehand by the local executor. Each training needs more than one 3-minute job (6
epochs made >= 20 s each by SEGSCALE_FAULT_SLOW_EPOCH_S, plus start-up); OAR warns it 60 s
before the walltime (`--checkpoint=60 --signal=12`, from train_resources.signal_margin_s;
OAR checks every 10 s), which leaves the run time to checkpoint and exit.
segscale.oar.job relays the warning as SIGURG: to the bare 1-GPU baseline directly, and
through mpirun (`ess_base_forward_signals`) to both ranks of the 2-GPU run, one on each
node. The ranks checkpoint and exit 75, the relay exits 99, OAR resubmits the job
(idempotent, ran > 60 s), the status command follows the new id, and the resubmitted job
resumes: every epoch once in history.csv.

As on Slurm (tests/slurm/test_walltime.py), a warned bare run has once in many runs gone on
to its limit (OAR kills it: event WALLTIME) on the emulated nodes; Snakemake's retry then
resumes it. That is allowed once, never for every job: OAR's own resubmission must happen.

About 5 minutes on the 2-CPU CI machine (2-3 OAR jobs per run, both runs at once).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = [pytest.mark.oar, pytest.mark.slow, pytest.mark.horovod]

REPO = Path(__file__).resolve().parents[2]
TRAIN_PYTHON = REPO / ".venv-train" / "bin" / "python"
SNAKEMAKE = REPO / ".venv" / "bin" / "snakemake"
TEST_CONFIG = REPO / ".test" / "config" / "config.yaml"
DATASET, ARCH, POLICY = "tiny-heart", "unet", "none"
GPUS = (1, 2)
EPOCHS = 6
SLOW_EPOCH_S = 20  # 6 x >= 20 s + start-up: more than a 3-minute job warned 60 s early
OVERRIDES = {
    "sweep": {"archs": [ARCH], "policies": [POLICY], "gpus": list(GPUS), "repeats": 1},
    "archs": {ARCH: {"epochs": EPOCHS, "sync_every_steps": 1, "warmup_epochs": 1}},
    "gpus_per_node": 1,  # the 2-GPU run spans both nodes
    "train_resources": {"one_gpu_runtime": {"default": 3}, "margin": 1, "minimum": 3,
                        "exponent": 0, "signal_margin_s": 60, "retries": 2},
}
SUBMITTED = re.compile(r"with external jobid '(\d+)'")
RESUBMITTED = re.compile(r"=>\s*(\d+)")


def run_dir(workdir: Path, n: int) -> Path:
    return workdir / "results" / "runs" / DATASET / ARCH / "horovod" / POLICY / f"gpus{n}" / "rep0"


def target(workdir: Path, n: int) -> str:
    return str((run_dir(workdir, n) / "run.json").relative_to(workdir))


def oarstat(oar, job_id: int) -> dict:
    proc = oar.as_user("oarstat", "-fJ", "-j", str(job_id))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)[str(job_id)]


def chain(oar, first: int) -> list[dict]:
    """The job and its automatic resubmissions, in order."""
    jobs = [oarstat(oar, first)]
    while True:
        events = [e for e in jobs[-1].get("events") or []
                  if e.get("type") == "RESUBMIT_JOB_AUTOMATICALLY"]
        if not events:
            return jobs
        jobs.append(oarstat(oar, int(RESUBMITTED.search(events[0]["description"])[1])))


def tail(path: Path, lines: int = 15) -> str:
    """The end of a job's log (evidence when a job went another way than planned)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as err:
        return f"({err})"


def event_types(job: dict) -> set[str]:
    return {e.get("type") for e in job.get("events") or []}


def idempotent_profile(workdir: Path) -> Path:
    """profiles/oar with `-t idempotent` training jobs (the profile's commented example)."""
    profile = workdir / "profile-oar-idempotent"
    shutil.copytree(REPO / "profiles" / "oar", profile)
    settings = yaml.safe_load((profile / "profile.yaml").read_text())
    settings["set-resources"]["train"]["oar_extra"] = "'-t idempotent'"
    (profile / "profile.yaml").write_text(yaml.safe_dump(settings))
    return profile  # root's, readable by the submitting user


@pytest.fixture(scope="module")
def walltime_sweep(request):
    if not TRAIN_PYTHON.exists():
        pytest.skip(f"training environment missing ({TRAIN_PYTHON}): run scripts/setup.sh")
    if os.geteuid() != 0:
        pytest.skip("the local OAR needs root")
    oar = request.getfixturevalue("oar")
    workdir = Path(tempfile.mkdtemp(prefix="segscale-oar-walltime-", dir="/tmp"))
    shutil.chown(workdir, oar.user)
    config = workdir / "walltime.yaml"
    config.write_text(yaml.safe_dump(OVERRIDES))
    targets = [target(workdir, n) for n in GPUS]
    common = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
              "--configfile", str(TEST_CONFIG), str(config)]
    ids: list[int] = []
    try:
        data = oar.as_user(*common, "--cores", "2", "--omit-from", "train", "--", *targets,
                           cwd=workdir, timeout=600)
        assert data.returncode == 0, data.stderr[-6000:]
        proc = oar.as_user(
            *common, "--profile", str(idempotent_profile(workdir)), "--jobs", "4",
            "--seconds-between-status-checks", "2", "--max-status-checks-per-second", "10",
            "--", *targets, cwd=workdir, timeout=900,
            env={"SEGSCALE_FAULT_SLOW_EPOCH_S": str(SLOW_EPOCH_S)})
        output = proc.stdout + proc.stderr
        ids = [int(i) for i in SUBMITTED.findall(output)]
        assert proc.returncode == 0, f"rc {proc.returncode}\n{output[-8000:]}"
        yield {"oar": oar, "workdir": workdir, "ids": ids}
    finally:
        if ids:  # a timeout kills snakemake, not its OAR jobs (nor their resubmissions)
            oar.as_user("oardel", *map(str, range(min(ids), min(ids) + 20)))
        shutil.rmtree(workdir, ignore_errors=True)


def gpus_of(job: dict) -> int:
    name = rf"rule_train_wildcards_{DATASET}_{ARCH}_horovod_{POLICY}_(\d)_0"
    return int(re.fullmatch(name, job["name"])[1])


def test_warned_jobs_stop_and_oar_resubmits_them(walltime_sweep):
    oar, ids = walltime_sweep["oar"], walltime_sweep["ids"]
    chains = [chain(oar, job_id) for job_id in sorted(ids)]  # Snakemake's, in order
    assert sorted({gpus_of(c[0]) for c in chains}) == list(GPUS), chains
    resubmitted, missed = 0, []
    for n in GPUS:
        runs = [c for c in chains if gpus_of(c[0]) == n]
        # one rank per node: for n=2 the warning reached the other node through mpirun
        assert all(len(job["assigned_network_address"]) == n for c in runs for job in c)
        last = runs[-1][-1]
        assert last["state"] == "Terminated" and last["exit_code"] == 0, last
        for jobs in runs:
            for warned in jobs[:-1]:
                # OAR resubmitted it: warned (CHECKPOINT), stopped before the walltime
                # with the relay's 99
                assert "CHECKPOINT" in event_types(warned), warned["events"]
                assert warned["state"] == "Terminated" and warned["exit_code"] >> 8 == 99, \
                    warned
                assert "WALLTIME" not in event_types(warned), warned["events"]
                resubmitted += 1
        missed += [jobs[-1] for jobs in runs[:-1]]  # ended without OAR: Snakemake retried
    assert resubmitted >= 1, chains
    workdir = walltime_sweep["workdir"]
    assert len(missed) <= 1, [(j["Job_Id"], j["state"], j["exit_code"],
                               sorted(event_types(j)), tail(workdir / j["stderr_file"]))
                              for j in missed]
    for job in missed:  # what the emulation let slip, for the record
        print(f"job {job['Job_Id']} was not resubmitted by OAR: {sorted(event_types(job))}\n"
              f"{tail(workdir / job['stderr_file'])}")


@pytest.mark.parametrize("n", GPUS)
def test_the_resubmitted_run_resumed_with_every_epoch_once(walltime_sweep, n):
    workdir = walltime_sweep["workdir"]
    folder = run_dir(workdir, n)
    manifest = json.loads((folder / "run.json").read_text())
    history = pd.read_csv(folder / "history.csv")
    assert manifest["status"] == "ok" and manifest["n_ranks"] == n, manifest
    assert history["epoch"].tolist() == list(range(EPOCHS)), history
    assert manifest["epochs_completed"] == EPOCHS
    assert manifest["resumed_from_epoch"] >= 1, manifest  # the last job did not start over
    assert manifest["train_time_s"] == pytest.approx(history["epoch_time_s"].sum())
    assert not (folder / "ckpt").exists()
    logs = Path(str(folder).replace("/results/runs/", "/results/logs/runs/"))
    relayed = [p for p in logs.glob("oar.*.err")
               if "segscale.oar.job: walltime warning (signal 12)" in p.read_text()]
    assert relayed, sorted(p.name for p in logs.iterdir())
