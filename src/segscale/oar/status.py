"""A job's state for Snakemake: ``python -m segscale.oar.status JOB_ID`` prints ``running``,
``success`` or ``failed`` (one line, what the cluster-generic executor expects).

It reads ``oarstat -fJ -j JOB_ID`` (JSON, keyed by job id):

- Waiting, Hold, toLaunch, toAckReservation, Launching, Running, Finishing, Suspended,
  Resuming: ``running``;
- Terminated: ``success`` only when ``exit_code``, the job script's raw wait status, says exit
  0 (768 is exit 3; a signal is a failure);
- Error, toError, and an id oarstat does not know (empty output): ``failed``.

A besteffort + idempotent job that OAR killed and resubmitted (event
RESUBMIT_JOB_AUTOMATICALLY, "new id = N") is followed to its new id, so a preemption does not
fail the Snakemake job while OAR runs it again. Why a job failed goes to stderr.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

from segscale import cli

RUNNING, SUCCESS, FAILED = "running", "success", "failed"
ACTIVE_STATES = frozenset({"Waiting", "Hold", "toLaunch", "toAckReservation", "Launching",
                           "Running", "Finishing", "Suspended", "Resuming"})
FAILED_STATES = frozenset({"Error", "toError"})
RESUBMITTED = re.compile(r"(?:new id\s*=\s*|=>\s*)(\d+)")
MAX_RESUBMISSIONS = 20  # a chain longer than this is reported as it stands


def parse_oarstat(text: str, job_id: int | str) -> dict | None:
    """The job's record in ``oarstat -fJ -j ID`` output; None when oarstat knows no such job
    (empty output, or JSON without it).

    Raises:
        ValueError: the output is not JSON.
    """
    if not text.strip():
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"oarstat output is not JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"oarstat output is not a JSON object: {text[:200]!r}")
    record = data.get(str(job_id))
    if record is None and len(data) == 1 and "Job_Id" in next(iter(data.values()), {}):
        record = next(iter(data.values()))
    return record


def exit_status(raw: int | str | None) -> tuple[int | None, int | None]:
    """(exit code, signal) from OAR's ``exit_code``, a raw wait status (768 -> exit 3)."""
    if raw is None or raw == "":
        return None, None
    status = int(raw)
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status), None
    return None, None


def resubmitted_as(record: dict) -> int | None:
    """The id OAR gave this job's automatic resubmission (besteffort + idempotent), if any."""
    for event in record.get("events") or []:
        if event.get("type") == "RESUBMIT_JOB_AUTOMATICALLY":
            match = RESUBMITTED.search(str(event.get("description", "")))
            if match:
                return int(match[1])
    return None


def classify(record: dict | None) -> tuple[str, str]:
    """(running|success|failed, why) for one oarstat record (None: unknown job)."""
    if record is None:
        return FAILED, "oarstat knows no such job"
    state = record.get("state")
    if state in ACTIVE_STATES:
        return RUNNING, str(state)
    if state == "Terminated":
        code, signal = exit_status(record.get("exit_code"))
        if code == 0:
            return SUCCESS, "Terminated, exit 0"
        if signal is not None:
            return FAILED, f"Terminated by signal {signal}"
        if code is None:
            return FAILED, "Terminated without an exit code"
        return FAILED, f"Terminated with exit code {code} (raw {record.get('exit_code')})"
    if state in FAILED_STATES:
        return FAILED, f"{state}: {record.get('message') or 'no message'}"
    return FAILED, f"unknown OAR state {state!r}"


def query(job_id: int | str, oarstat: str = "oarstat", tries: int = 3) -> dict | None:
    """The job's oarstat record; oarstat failing (database busy) is retried.

    Raises:
        RuntimeError: oarstat failed ``tries`` times.
    """
    for attempt in range(tries):
        proc = subprocess.run([oarstat, "-fJ", "-j", str(job_id)], capture_output=True,
                              text=True, check=False)
        if proc.returncode == 0:
            return parse_oarstat(proc.stdout, job_id)
        if attempt + 1 < tries:
            time.sleep(1 + attempt)
    raise RuntimeError(f"oarstat -fJ -j {job_id} failed (exit {proc.returncode}): "
                       f"{proc.stderr.strip() or proc.stdout.strip()}")


def status(job_id: int | str, lookup=query) -> tuple[str, str]:
    """(running|success|failed, why), following automatic resubmissions."""
    seen = [str(job_id)]
    record = lookup(job_id)
    verdict, why = classify(record)
    while verdict == FAILED and record is not None and len(seen) <= MAX_RESUBMISSIONS:
        new_id = resubmitted_as(record)
        if new_id is None or str(new_id) in seen:
            break
        seen.append(str(new_id))
        record = lookup(new_id)
        verdict, why = classify(record)
    if len(seen) > 1:
        why = f"{why} (resubmitted as {' -> '.join(seen[1:])})"
    return verdict, why


def build_parser():
    p = cli.parser("segscale.oar.status", __doc__)
    p.add_argument("job_id", help="the OAR job id (as segscale.oar.submit printed it)")
    p.add_argument("--oarstat", default="oarstat", help="the oarstat command")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        verdict, why = status(args.job_id.strip(), lambda i: query(i, args.oarstat))
    except (OSError, RuntimeError, ValueError) as err:
        sys.stderr.write(f"segscale.oar.status: job {args.job_id}: {err}\n")
        return 1
    if verdict == FAILED:
        sys.stderr.write(f"segscale.oar.status: OAR job {args.job_id} failed: {why}\n")
    sys.stdout.write(f"{verdict}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
