"""Submit a Snakemake jobscript to OAR: ``python -m segscale.oar.submit [options] JOBSCRIPT``.

The cluster-generic executor appends the jobscript's path to the profile's submit command
and reads the job id from the first line of stdout. The jobscript's ``# properties = {...}``
line (rule, wildcards, resources, log) gives the request, with the placement the workflow
computes for Slurm (workflow/rules/common.smk):

- a GPU job (resource ``gres: gpu:K``): ``-l /host=NODES/gpu=K,walltime=H:MM:SS``, NODES the
  ``nodes`` resource (ceil(N / gpus_per_node)); OAR gives each GPU its cores;
- any other job: ``-l /host=1/core=C,walltime=...``, C its ``cpus_per_task`` (else threads);
- walltime from the ``runtime`` resource (minutes);
- ``-p`` from the resource ``oar_properties`` (e.g. ``gpu_count > 0``), extra ``oarsub``
  arguments from the resource ``oar_extra`` (e.g. ``-t besteffort -t idempotent``, ``-q
  production``);
- the walltime warning from the resource ``signal_margin_s`` (the train rule's, from
  train_resources.signal_margin_s): ``--checkpoint S --signal 12``. The job's command is the
  jobscript run by segscale.oar.job, which turns that SIGUSR2 into the SIGURG the ranks catch
  (and, for ``-t idempotent``, exits 99 so that OAR resubmits the warned job).
  ``--checkpoint``/``--signal`` in ``oar_extra`` are refused: they would bypass it;
- the job's stdout/stderr as ``oar.%jobid%.out|err`` in the folder of the rule's first log
  file (the run's log folder), else under ``.snakemake/oar_logs/<rule>/``;
- the job name ``rule_<rule>_wildcards_<values>`` (as the Slurm executor's comment);
- the submitting environment's ``PATH``, ``VIRTUAL_ENV``, ``PYTHONPATH`` and ``SEGSCALE_*``
  variables: an OAR job starts from a login environment, not the submitter's (Slurm's sbatch
  exports it), and the rules run ``python -m segscale...`` from the workflow environment.

``oarsub`` prints admission-rule messages and ``OAR_JOB_ID=<id>`` on stdout; only the id is
printed here (the rest goes to stderr). A refusal (``OAR_JOB_ID=-5``, non-zero exit) exits 1
and prints why on stdout, which the executor shows.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from segscale import cli

JOB_ID_LINE = re.compile(r"^OAR_JOB_ID=(-?\d+)\s*$", re.MULTILINE)
PROPERTIES_LINE = re.compile(r"^#\s*properties\s*=\s*(\{.*\})\s*$", re.MULTILINE)
GRES_GPU = re.compile(r"^gpu(?::[^:,]+)?:(\d+)$")
FALLBACK_LOGS = Path(".snakemake") / "oar_logs"
EXPORTED = ("PATH", "VIRTUAL_ENV", "PYTHONPATH")
EXPORTED_PREFIX = "SEGSCALE_"
CHECKPOINT_SIGNAL = 12  # SIGUSR2, OAR's default; segscale.oar.job's --warning-signal default
OWN_FLAGS = ("--checkpoint", "--signal")  # set from signal_margin_s, never by oar_extra


class SubmitError(RuntimeError):
    """oarsub did not accept the job (the message says why)."""


@dataclass(frozen=True)
class Request:
    """What one ``oarsub`` call asks for."""

    resources: str  # the -l value
    properties: str | None = None  # the -p value
    name: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    directory: str | None = None
    extra: tuple[str, ...] = field(default_factory=tuple)
    env: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    warning_s: int = 0  # --checkpoint: seconds before the walltime (0: no warning)
    python: str = sys.executable  # the workflow environment's, for segscale.oar.job

    @property
    def idempotent(self) -> bool:
        """Whether ``oar_extra`` makes the job idempotent (``-t idempotent``)."""
        return "idempotent" in job_types(self.extra)

    def command(self, jobscript: str) -> str:
        """The job's command: the jobscript under segscale.oar.job, in the submitter's
        exported variables."""
        wrapper = [self.python, "-m", "segscale.oar.job"]
        if self.idempotent:
            wrapper.append("--idempotent")
        assignments = [f"{key}={value}" for key, value in self.env]
        prefix = ["/usr/bin/env", *assignments] if assignments else []
        return shlex.join([*prefix, *wrapper, "--", jobscript])

    def argv(self, jobscript: str, oarsub: str = "oarsub") -> list[str]:
        """The oarsub command line running the jobscript."""
        args = [oarsub, "-l", self.resources]
        if self.properties:
            args += ["-p", self.properties]
        if self.name:
            args += ["-n", self.name]
        if self.directory:
            args += ["-d", self.directory]
        if self.stdout:
            args += ["-O", self.stdout]
        if self.stderr:
            args += ["-E", self.stderr]
        if self.warning_s > 0:
            args += [f"--checkpoint={self.warning_s}", f"--signal={CHECKPOINT_SIGNAL}"]
        return [*args, *self.extra, self.command(jobscript)]


def job_types(extra: tuple[str, ...] | list[str]) -> list[str]:
    """The ``-t``/``--type`` values among oarsub arguments."""
    types: list[str] = []
    for i, arg in enumerate(extra):
        if arg in ("-t", "--type") and i + 1 < len(extra):
            types.append(extra[i + 1])
        elif arg.startswith("--type="):
            types.append(arg.split("=", 1)[1])
        elif arg.startswith("-t") and len(arg) > 2:
            types.append(arg[2:])
    return types


def check_extra(extra: tuple[str, ...]) -> None:
    """Refuse the oarsub flags segscale sets itself.

    Raises:
        ValueError: ``--checkpoint`` or ``--signal`` in ``oar_extra``.
    """
    own = [arg for arg in extra if arg.split("=", 1)[0] in OWN_FLAGS]
    if own:
        raise ValueError(
            f"oar_extra sets {' '.join(own)}: the walltime warning comes from "
            "train_resources.signal_margin_s (submitted as --checkpoint with a signal that "
            "segscale.oar.job hands on to the ranks); remove it from oar_extra")


def read_properties(jobscript: str) -> dict:
    """The job properties Snakemake writes into its jobscript (``# properties = {...}``).

    Raises:
        ValueError: no properties line, or one that is not JSON.
    """
    match = PROPERTIES_LINE.search(jobscript)
    if not match:
        raise ValueError("no '# properties = {...}' line: not a Snakemake jobscript?")
    try:
        return json.loads(match[1])
    except json.JSONDecodeError as err:
        raise ValueError(f"the jobscript's properties are not JSON: {err}") from None


def walltime(minutes: float) -> str:
    """OAR's ``H:MM:SS`` for a runtime in minutes (rounded up to a whole minute, at least 1)."""
    total = max(1, math.ceil(float(minutes)))
    return f"{total // 60}:{total % 60:02d}:00"


def gpus_per_node(resources: dict) -> int:
    """GPUs per node from the ``gres`` resource (``gpu:K`` or ``gpu:type:K``); 0 without."""
    gres = str(resources.get("gres") or "")
    match = GRES_GPU.match(gres.strip())
    return int(match[1]) if match else 0


def resource_string(resources: dict, threads: int = 1, default_runtime: float = 60) -> str:
    """The ``-l`` value: hosts and GPUs per host for GPU jobs, cores on one host otherwise."""
    runtime = resources.get("runtime") or default_runtime
    gpus = gpus_per_node(resources)
    if gpus:
        nodes = int(resources.get("nodes") or 1)
        shape = f"/host={nodes}/gpu={gpus}"
    else:
        cores = int(resources.get("cpus_per_task") or threads or 1)
        shape = f"/host=1/core={max(1, cores)}"
    return f"{shape},walltime={walltime(runtime)}"


def job_name(properties: dict) -> str:
    """``rule_<rule>_wildcards_<values joined by _>``, as the Slurm executor's comment."""
    rule = properties.get("rule") or "group"
    wildcards = properties.get("wildcards") or {}
    values = "_".join(str(v) for v in wildcards.values())
    name = f"rule_{rule}" + (f"_wildcards_{values}" if values else "")
    return re.sub(r"[^A-Za-z0-9_.=+-]", "-", name)


def log_folder(properties: dict) -> Path:
    """Where the job's OAR stdout/stderr go: the folder of the rule's first log file."""
    logs = properties.get("log") or []
    if isinstance(logs, dict):
        logs = list(logs.values())
    if logs:
        return Path(logs[0]).parent
    return FALLBACK_LOGS / str(properties.get("rule") or "group")


def unquote(value) -> str:
    """A string resource as given, without the quotes a profile may leave around it."""
    text = "" if value is None else str(value).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return text


def exported(environ: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """The submitter's variables the job gets (PATH, VIRTUAL_ENV, PYTHONPATH, SEGSCALE_*)."""
    names = [n for n in EXPORTED if environ.get(n)]
    names += sorted(n for n in environ if n.startswith(EXPORTED_PREFIX) and n not in names)
    return tuple((name, environ[name]) for name in names)


def build_request(properties: dict, workdir: str | None = None,
                  environ: dict[str, str] | None = None) -> Request:
    """The oarsub request for a jobscript's properties."""
    resources = properties.get("resources") or {}
    folder = log_folder(properties)
    extra = tuple(shlex.split(unquote(resources.get("oar_extra"))))
    check_extra(extra)
    return Request(
        resources=resource_string(resources, int(properties.get("threads") or 1)),
        properties=unquote(resources.get("oar_properties")) or None,
        name=job_name(properties),
        stdout=str(folder / "oar.%jobid%.out"),
        stderr=str(folder / "oar.%jobid%.err"),
        directory=workdir,
        extra=extra,
        env=exported(dict(os.environ) if environ is None else environ),
        warning_s=int(resources.get("signal_margin_s") or 0),
    )


def parse_job_id(stdout: str, returncode: int, stderr: str = "") -> int:
    """The job id from oarsub's output (the ``OAR_JOB_ID=<id>`` line among others).

    Raises:
        SubmitError: oarsub failed or refused the job (``OAR_JOB_ID=-5``): the message
            carries oarsub's own explanation.
    """
    ids = [int(m) for m in JOB_ID_LINE.findall(stdout)]
    if returncode == 0 and ids and ids[-1] > 0:
        return ids[-1]
    said = [line.strip() for line in (stderr + "\n" + stdout).splitlines()
            if line.strip() and not JOB_ID_LINE.match(line.strip())]
    why = "; ".join(said) or "no explanation printed"
    shown = f"OAR_JOB_ID={ids[-1]}" if ids else "no OAR_JOB_ID line"
    raise SubmitError(f"oarsub refused the job ({shown}, exit {returncode}): {why}")


def submit(jobscript: Path, oarsub: str = "oarsub", workdir: str | None = None) -> int:
    """Submit ``jobscript``; return the OAR job id."""
    properties = read_properties(jobscript.read_text())
    request = build_request(properties, workdir or os.getcwd())
    Path(request.stdout).parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(request.argv(str(jobscript.resolve()), oarsub), capture_output=True,
                          text=True, check=False)
    job_id = parse_job_id(proc.stdout, proc.returncode, proc.stderr)
    # Admission-rule messages are worth seeing, but stdout is for the id alone.
    noise = [ln for ln in proc.stdout.splitlines() if ln.strip() and not JOB_ID_LINE.match(ln)]
    for line in [*noise, *proc.stderr.splitlines()]:
        sys.stderr.write(f"oarsub: {line}\n")
    return job_id


def build_parser():
    p = cli.parser("segscale.oar.submit", __doc__)
    p.add_argument("jobscript", type=Path, help="the Snakemake jobscript (added by the executor)")
    p.add_argument("--oarsub", default="oarsub", help="the oarsub command (default: oarsub)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        job_id = submit(args.jobscript, args.oarsub)
    except (OSError, ValueError, SubmitError) as err:
        # The executor shows stdout when the submit command fails.
        sys.stdout.write(f"segscale.oar.submit: {args.jobscript}: {err}\n")
        return 1
    sys.stdout.write(f"{job_id}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
