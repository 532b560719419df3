"""segscale.oar's commands against outputs recorded from a real OAR 2.5.9 (tests/oar/data):
oarsub's job id among admission-rule lines and its refusals, oarstat's JSON states and raw
exit statuses, the oarsub request built from real Snakemake jobscripts, oardel, and the
per-GPU machinefile of the rank launcher. No OAR needed: fake commands replay the records."""

from __future__ import annotations

import json
import os
import shlex
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from segscale.oar import cancel, job, launch, status, submit

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[2]


def record(name: str) -> str:
    return (DATA / name).read_text()


def fake_command(tmp_path: Path, name: str, stdout: str = "", stderr: str = "",
                 code: int = 0) -> Path:
    """An executable that prints recorded output, exits ``code`` and logs its arguments."""
    (tmp_path / f"{name}.out").write_text(stdout)
    (tmp_path / f"{name}.err").write_text(stderr)
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {tmp_path}/{name}.args\n"
                    f"cat {tmp_path}/{name}.out\ncat {tmp_path}/{name}.err >&2\nexit {code}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def run_module(module: str, *args: str, env: dict | None = None, cwd: Path | None = None):
    environ = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          env=environ, cwd=cwd, timeout=60)


# ---- submit ---------------------------------------------------------------------------------


def test_job_id_is_the_oar_job_id_line_among_admission_rule_messages():
    assert submit.parse_job_id(record("oarsub_accepted.stdout"), 0) == 9


def test_refusal_says_why():
    with pytest.raises(submit.SubmitError) as err:
        submit.parse_job_id(record("oarsub_refused.stdout"), 8, record("oarsub_refused.stderr"))
    message = str(err.value)
    assert "OAR_JOB_ID=-5" in message and "exit 8" in message
    assert "There are not enough resources for your request" in message


def test_root_refused_by_the_admission_rules():
    with pytest.raises(submit.SubmitError, match="root and oar users are not allowed"):
        submit.parse_job_id("", 254, record("oarsub_root.stderr"))


def test_a_negative_id_with_exit_zero_is_still_a_refusal():
    with pytest.raises(submit.SubmitError, match="OAR_JOB_ID=-5"):
        submit.parse_job_id("OAR_JOB_ID=-5\n", 0)


@pytest.mark.parametrize("minutes, want", [(10, "0:10:00"), (59.2, "1:00:00"), (90, "1:30:00"),
                                           (1440, "24:00:00"), (0, "0:01:00"), ("15", "0:15:00")])
def test_walltime_from_runtime_minutes(minutes, want):
    assert submit.walltime(minutes) == want


def test_training_request_uses_the_slurm_placement():
    """n=2 with gpus_per_node=1: nodes=2 (ceil(N / per node)), gres gpu:1 -> 2 hosts x 1 GPU."""
    props = submit.read_properties(record("jobscript_train_gpus2.sh"))
    assert props["resources"]["nodes"] == 2 and props["resources"]["gres"] == "gpu:1"
    request = submit.build_request(props, "/work/dir", {"PATH": "/venv/bin:/usr/bin"})
    runtime = props["resources"]["runtime"]
    assert request.resources == f"/host=2/gpu=1,walltime={submit.walltime(runtime)}"
    assert request.properties == "gpu_count > 0"
    assert request.name == "rule_train_wildcards_tiny-heart_unet_none_2_0"
    folder = "results/logs/runs/tiny-heart/unet/none/gpus2/rep0"
    assert request.stdout == f"{folder}/oar.%jobid%.out"
    assert request.stderr == f"{folder}/oar.%jobid%.err"
    argv = request.argv("/work/dir/.snakemake/tmp/snakejob.train.3.sh")
    assert argv[:3] == ["oarsub", "-l", request.resources]
    assert argv[argv.index("-p") + 1] == "gpu_count > 0"
    assert argv[argv.index("-d") + 1] == "/work/dir"
    # The job runs the jobscript in the submitter's PATH (OAR starts from a login shell),
    # under segscale.oar.job (the walltime warning's relay), from the workflow's Python.
    assert shlex.split(argv[-1]) == ["/usr/bin/env", "PATH=/venv/bin:/usr/bin",
                                     sys.executable, "-m", "segscale.oar.job", "--",
                                     "/work/dir/.snakemake/tmp/snakejob.train.3.sh"]
    # The recorded jobscript has no walltime warning (signal_margin_s 0): no --checkpoint.
    assert not [a for a in argv if a.startswith(("--checkpoint", "--signal"))]


def test_more_gpus_than_a_node_fills_whole_nodes():
    resources = {"nodes": 3, "gres": "gpu:2", "runtime": 125}
    assert submit.resource_string(resources) == "/host=3/gpu=2,walltime=2:05:00"
    assert submit.gpus_per_node({"gres": "gpu:a100:4"}) == 4


def test_data_jobs_ask_cores_on_one_host():
    props = submit.read_properties(record("jobscript_split.sh"))
    request = submit.build_request(props, "/w", {})
    assert request.resources == "/host=1/core=2,walltime=0:30:00"
    assert request.properties is None and request.env == ()
    assert request.stdout == "results/logs/data/tiny-heart/split.log".rsplit("/", 1)[0] + \
        "/oar.%jobid%.out"


def test_site_arguments_and_properties_from_resources():
    props = {"rule": "train", "wildcards": {"n": "4"}, "log": [], "threads": 4,
             "resources": {"nodes": 2, "gres": "gpu:2", "runtime": 60, "signal_margin_s": 600,
                           "oar_properties": "'gpu_model = ''A100'''",
                           "oar_extra": "-t besteffort --type=idempotent -q production"}}
    request = submit.build_request(props, "/w", {"SEGSCALE_TRAIN_ENV": "/t", "HOME": "/h"})
    assert request.extra == ("-t", "besteffort", "--type=idempotent", "-q", "production")
    assert request.properties == "gpu_model = ''A100''"
    assert request.stdout == ".snakemake/oar_logs/train/oar.%jobid%.out"
    assert request.env == (("SEGSCALE_TRAIN_ENV", "/t"),)
    argv = request.argv("/w/job.sh")
    # The walltime warning: SIGUSR2 600 s before the end, which segscale.oar.job relays;
    # the idempotent type makes a warned job exit 99 (OAR resubmits it).
    assert argv[-8:-6] == ["--checkpoint=600", "--signal=12"]
    assert shlex.split(argv[-1])[-5:] == ["-m", "segscale.oar.job", "--idempotent", "--",
                                          "/w/job.sh"]


@pytest.mark.parametrize("extra", ["--checkpoint 600", "--signal=10",
                                   "-t idempotent --checkpoint=60"])
def test_own_walltime_flags_in_oar_extra_are_refused(extra):
    props = {"rule": "train", "resources": {"oar_extra": extra}}
    with pytest.raises(ValueError, match="train_resources.signal_margin_s"):
        submit.build_request(props, "/w", {})


@pytest.mark.parametrize(("extra", "types"), [
    (("-t", "besteffort", "-t", "idempotent"), ["besteffort", "idempotent"]),
    (("--type=idempotent", "-q", "default"), ["idempotent"]),
    (("-tbesteffort",), ["besteffort"]),
    (("-q", "production"), []),
])
def test_job_types_read_every_spelling(extra, types):
    assert submit.job_types(extra) == types


def test_not_a_jobscript_is_refused():
    with pytest.raises(ValueError, match="properties"):
        submit.read_properties("#!/bin/sh\necho hi\n")


def test_submit_cli_prints_only_the_id(tmp_path):
    oarsub = fake_command(tmp_path, "oarsub", record("oarsub_accepted.stdout"))
    jobscript = tmp_path / "job.sh"
    jobscript.write_text(record("jobscript_train_gpus2.sh"))
    proc = run_module("segscale.oar.submit", "--oarsub", str(oarsub), str(jobscript),
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "9\n"  # what cluster-generic reads: the first line
    assert "[ADMISSION RULE]" in proc.stderr
    args = (tmp_path / "oarsub.args").read_text().splitlines()
    assert args[:2] == ["-l", "/host=2/gpu=1,walltime=0:15:00"]
    assert (tmp_path / "results/logs/runs/tiny-heart/unet/none/gpus2/rep0").is_dir()


def test_submit_cli_refusal_exits_1_with_the_reason_on_stdout(tmp_path):
    oarsub = fake_command(tmp_path, "oarsub", record("oarsub_refused.stdout"),
                          record("oarsub_refused.stderr"), code=8)
    jobscript = tmp_path / "job.sh"
    jobscript.write_text(record("jobscript_split.sh"))
    proc = run_module("segscale.oar.submit", "--oarsub", str(oarsub), str(jobscript),
                      cwd=tmp_path)
    assert proc.returncode == 1
    assert "not enough resources" in proc.stdout and "OAR_JOB_ID=-5" in proc.stdout


# ---- status ---------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, want", [(0, (0, None)), (768, (3, None)), (256, (1, None)),
                                       (9, (None, 9)), (15, (None, 15)), (None, (None, None)),
                                       ("768", (3, None))])
def test_exit_code_is_a_raw_wait_status(raw, want):
    assert status.exit_status(raw) == want


@pytest.mark.parametrize("name, job_id, want", [
    ("oarstat_terminated_ok.json", 4, "success"),
    ("oarstat_terminated_exit3.json", 1, "failed"),
    ("oarstat_running.json", 2, "running"),
    ("oarstat_error.json", 3, "failed"),
    ("oarstat_deleted.json", 5, "failed"),
])
def test_recorded_states(name, job_id, want):
    record_ = status.parse_oarstat(record(name), job_id)
    assert record_["Job_Id"] == job_id
    assert status.classify(record_)[0] == want


def test_exit_3_is_named():
    verdict, why = status.classify(status.parse_oarstat(record("oarstat_terminated_exit3.json"), 1))
    assert verdict == "failed" and "exit code 3" in why and "768" in why


@pytest.mark.parametrize("state", ["Waiting", "Hold", "toLaunch", "Launching", "Running",
                                   "Finishing", "Suspended", "Resuming"])
def test_active_states_are_running(state):
    assert status.classify({"state": state})[0] == "running"


def test_unknown_id_is_a_failure():
    assert status.parse_oarstat("", 999) is None
    assert status.classify(None) == ("failed", "oarstat knows no such job")


def test_terminated_by_a_signal_is_a_failure():
    assert status.classify({"state": "Terminated", "exit_code": 9}) == \
        ("failed", "Terminated by signal 9")


def test_an_automatic_resubmission_is_followed():
    """A besteffort + idempotent job killed by OAR: its new id decides (bipbip's event text)."""
    old = json.loads(record("oarstat_error.json"))["3"]
    old["events"] = [{"type": "RESUBMIT_JOB_AUTOMATICALLY", "job_id": 3,
                      "description": "[bipbip 3] The job 3 is a besteffort and idempotent job "
                                     "so we resubmit it (new id = 12)"}]
    new = json.loads(record("oarstat_running.json"))["2"]
    records = {"3": old, "12": new}
    verdict, why = status.status(3, lambda i: records.get(str(i)))
    assert verdict == "running" and "resubmitted as 12" in why
    event = {"type": "RESUBMIT_JOB_AUTOMATICALLY", "description": "Resubmiting job 3 => 14 (...)"}
    assert status.resubmitted_as({"events": [event]}) == 14


def test_status_cli_prints_one_word(tmp_path):
    for name, job_id, want in [("oarstat_terminated_ok.json", "4", "success"),
                               ("oarstat_terminated_exit3.json", "1", "failed"),
                               ("oarstat_running.json", "2", "running")]:
        oarstat = fake_command(tmp_path, "oarstat", record(name))
        proc = run_module("segscale.oar.status", "--oarstat", str(oarstat), job_id)
        assert proc.returncode == 0 and proc.stdout == f"{want}\n", proc.stderr
        assert (tmp_path / "oarstat.args").read_text().split() == ["-fJ", "-j", job_id]
    oarstat = fake_command(tmp_path, "oarstat", "")  # unknown id: empty output, exit 0
    proc = run_module("segscale.oar.status", "--oarstat", str(oarstat), "999")
    assert proc.stdout == "failed\n" and "no such job" in proc.stderr


# ---- cancel ---------------------------------------------------------------------------------


def test_cancel_runs_oardel_on_the_ids(tmp_path):
    oardel = fake_command(tmp_path, "oardel", "Deleting the job = 4 ...REGISTERED.\n")
    proc = run_module("segscale.oar.cancel", "--oardel", str(oardel), "4", "5")
    assert proc.returncode == 0 and "REGISTERED" in proc.stderr
    assert (tmp_path / "oardel.args").read_text().split() == ["4", "5"]
    oardel = fake_command(tmp_path, "oardel", "Deleting the job = 99 ...ERROR.\n",
                          "Cannot frag 99 ; You are not the right user.\n", code=1)
    assert run_module("segscale.oar.cancel", "--oardel", str(oardel), "99").returncode == 1
    with pytest.raises(ValueError):
        cancel.valid_ids(["4", "-5"])


def test_profile_cancel_command_is_an_executable_file_of_the_profile():
    """cluster-generic runs the cancel command without a shell: it must be one file."""
    import yaml

    profile = yaml.safe_load((REPO / "profiles/oar/profile.yaml").read_text())
    wrapper = REPO / "profiles/oar" / profile["cluster-generic-cancel-cmd"]
    assert wrapper.is_file() and os.access(wrapper, os.X_OK)
    assert "segscale.oar.cancel" in wrapper.read_text()


# ---- launch ---------------------------------------------------------------------------------

NODEFILE = "127.0.0.2\n127.0.0.2\n127.0.0.3\n127.0.0.3\n"  # job 1: /host=2/gpu=1, 2 cores/GPU
PROPERTIES = "\n".join(
    f" gpu = '{g}' , host = '{h}' , network_address = '{h}' , core = '{c}' , cpuset = '{c % 4}'"
    for g, h, c in [(1, "n1", 1), (1, "n1", 2), (2, "n1", 3), (2, "n1", 4),
                    (3, "n2", 5), (3, "n2", 6), (4, "n2", 7), (4, "n2", 8)])


def test_machinefile_has_one_line_per_gpu_not_per_core():
    hosts = launch.nodefile_hosts(NODEFILE)
    assert hosts == ["127.0.0.2", "127.0.0.3"]
    slots = launch.gpus_by_host(PROPERTIES)
    assert slots == {"n1": 2, "n2": 2}
    assert launch.machinefile_lines(["n1", "n2"], 4, slots) == ["n1", "n1", "n2", "n2"]
    assert launch.machinefile_lines(["n1", "n2"], 3, slots) == ["n1", "n1", "n2"]
    # Recorded job 1's properties file (one GPU on each host): one rank per host.
    recorded = ("gpu = '3' , network_address = '127.0.0.3'\ngpu = '1' , network_address = "
                "'127.0.0.2'\ngpu = '3' , network_address = '127.0.0.3'\ngpu = '1' , "
                "network_address = '127.0.0.2'\n")
    assert launch.machinefile_lines(hosts, 2, launch.gpus_by_host(recorded)) == hosts
    with pytest.raises(ValueError, match="4 ranks"):
        launch.machinefile_lines(hosts, 4, launch.gpus_by_host(recorded))


def test_without_gpu_properties_the_ranks_share_the_hosts():
    assert launch.machinefile_lines(["a", "b"], 4, {}) == ["a", "a", "b", "b"]
    assert launch.machinefile_lines(["a", "b"], 3, {}, per_node=2) == ["a", "a", "b"]


def test_cpu_ranks_take_the_hosts_in_turn_after_the_gpu_ranks():
    """tf-ps on 2 hosts x 2 GPUs with 2 parameter servers: 4 workers on the GPU slots, the
    coordinator and the servers one more slot per host in turn (mpirun -np 7)."""
    gpu = launch.machinefile_lines(["n1", "n2"], 4, {"n1": 2, "n2": 2})
    assert launch.with_cpu_ranks(gpu, ["n1", "n2"], 3) == ["n1", "n1", "n2", "n2", "n1", "n2",
                                                          "n1"]
    assert launch.with_cpu_ranks(["n1"], ["n1"], 0) == ["n1"]


def test_mpirun_over_oarsh_forwards_the_training_environment():
    env = {"PATH": "/venv-train/bin:/usr/bin", "HOROVOD_TIMELINE": "/t.json", "HOME": "/h",
           "OAR_JOB_ID": "7"}
    argv = launch.mpirun_argv(2, "/tmp/mf", ["python", "-m", "segscale.train"], env,
                              extra=["-mca", "btl", "self,tcp"])
    assert argv[:13] == ["mpirun", "-np", "2", "-machinefile", "/tmp/mf", "--map-by", "node",
                         "-mca", "plm_rsh_agent", "oarsh",
                         # the walltime warning reaches the ranks on every host
                         "-mca", "ess_base_forward_signals", "SIGURG"]
    assert "-x PATH" in " ".join(argv) and "-x HOROVOD_TIMELINE" in " ".join(argv)
    assert "HOME" not in argv
    assert argv[-6:] == ["-mca", "btl", "self,tcp", "python", "-m", "segscale.train"]


def test_launch_cli_execs_mpirun_with_the_machinefile(tmp_path):
    (tmp_path / "nodes").write_text(NODEFILE)
    mpirun = fake_command(tmp_path, "mpirun", "ranks started\n")
    proc = run_module("segscale.oar.launch", "-n", "2", "--mpirun", str(mpirun), "python", "-m",
                      "segscale.train", "--seed", "0",
                      env={"OAR_NODEFILE": str(tmp_path / "nodes"), "OAR_JOB_ID": "7",
                           "TMPDIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    args = (tmp_path / "mpirun.args").read_text().splitlines()
    machinefile = Path(args[args.index("-machinefile") + 1])
    assert machinefile.read_text() == "127.0.0.2\n127.0.0.3\n"
    assert args[-5:] == ["python", "-m", "segscale.train", "--seed", "0"]
    outside = run_module("segscale.oar.launch", "-n", "2", "true",
                         env={"OAR_NODEFILE": "", "OAR_NODE_FILE": ""})
    assert outside.returncode == 1 and "not inside an OAR job" in outside.stderr


# ---- job (the walltime warning's relay) -----------------------------------------------------

# A jobscript like Snakemake's: a shell that runs a "rank" as a grandchild. The rank writes
# which signal reached it and exits 75 (checkpointed), as segscale.train does.
RANK = """
import signal, sys, time
signal.signal(signal.SIGURG, lambda s, f: (open(sys.argv[1], "w").write(str(s)), sys.exit(75)))
open(sys.argv[2], "w").write("ready")
time.sleep(30)
sys.exit(0)
"""


def start_job(tmp_path: Path, *flags: str) -> tuple[subprocess.Popen, Path]:
    (tmp_path / "rank.py").write_text(RANK)
    script = tmp_path / "job.sh"
    got, ready = tmp_path / "got", tmp_path / "ready"
    script.write_text(f"#!/bin/sh\n{sys.executable} {tmp_path / 'rank.py'} {got} {ready}\n"
                      "status=$?\necho after the rank\nexit $status\n")
    script.chmod(0o755)
    proc = subprocess.Popen([sys.executable, "-m", "segscale.oar.job", *flags, "--", str(script)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    return proc, got


@pytest.mark.parametrize(("flags", "expected"), [((), 75), (("--idempotent",), 99)])
def test_oar_warning_reaches_the_rank_below_the_jobscript_shell(tmp_path, flags, expected):
    """OAR's checkpoint signal (SIGUSR2) goes to the job's command only: the relay turns it
    into SIGURG for every process below it; the shell survives (it ignores SIGURG) and the
    job ends with the rank's 75, or 99 for an idempotent job (OAR resubmits it)."""
    proc, got = start_job(tmp_path, *flags)
    proc.send_signal(signal.SIGUSR2)
    out, err = proc.communicate(timeout=30)
    assert got.read_text() == str(int(signal.SIGURG)), err
    assert "after the rank" in out  # the jobscript's shell lived on after the warning
    assert "walltime warning (signal 12)" in err
    assert proc.returncode == expected, err


def test_without_a_warning_the_job_keeps_the_jobscript_status(tmp_path):
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\nexit 3\n")
    script.chmod(0o755)
    assert run_module("segscale.oar.job", "--idempotent", "--", str(script)).returncode == 3
    gone = run_module("segscale.oar.job", "--", str(tmp_path / "missing.sh"))
    assert gone.returncode == 127 and "missing.sh" in gone.stderr


def test_final_status():
    assert job.final_status(0, warned=True, idempotent=True) == 0  # finished in time
    assert job.final_status(1, warned=False, idempotent=True) == 1  # not warned: a real error
    assert job.final_status(1, warned=True, idempotent=False) == 1  # Snakemake retries it
    assert job.final_status(1, warned=True, idempotent=True) == 99
    assert job.final_status(-9, warned=False, idempotent=False) == 137


def test_descendants_from_a_proc_tree(tmp_path):
    # Command names may hold spaces and parentheses: the ppid is read after the last ")".
    for pid, comm, ppid in [(10, "bash", 1), (11, "python3", 10), (12, "a) (b", 11),
                            (13, "mpirun", 11), (20, "other", 1)]:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(f"{pid} ({comm}) S {ppid} {pid} 0 0\n")
    (tmp_path / "self").mkdir()
    parents = job.parent_pids(tmp_path)
    assert parents == {10: 1, 11: 10, 12: 11, 13: 11, 20: 1}
    assert job.descendants(10, parents) == [11, 12, 13]
    assert job.descendants(20, parents) == []


@pytest.mark.parametrize(("text", "number"), [("USR2", 12), ("SIGUSR1", 10), ("12", 12)])
def test_warning_signal_by_name_or_number(text, number):
    assert job.signal_number(text) == number
