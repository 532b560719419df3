"""Start a training's ranks inside an OAR job:
``python -m segscale.oar.launch -n N COMMAND...``.

The train rule runs ``python -m segscale.train.env {launch} python -m segscale.train ...``;
with profiles/oar the launch prefix is ``python -m segscale.oar.launch -n N`` for N > 1 (the
1-GPU baseline runs bare). This runs::

    mpirun -np N -machinefile <per-GPU machinefile> --map-by node \\
        -mca plm_rsh_agent oarsh -mca ess_base_forward_signals SIGURG -x PATH ... COMMAND...

OAR's ``$OAR_NODEFILE`` has one line per *core* of the job; the machinefile written here has
one line per *GPU* (from ``$OAR_RESOURCE_PROPERTIES_FILE``: distinct ``gpu`` values per host),
filled host by host up to N, so every rank gets its own GPU and its local rank picks it.
Ranks on the other nodes start through OAR's remote shell ``oarsh``; mpirun hands SIGURG,
the walltime warning that segscale.oar.job relays, on to every rank (OpenMPI forwards only
USR1/USR2/TSTP/CONT/ABRT/ALRM by default); ``-x`` forwards
``PATH`` (the training environment first, as segscale.train.env set it) and the Horovod,
NCCL, TensorFlow and segscale variables present. Extra ``mpirun`` arguments: ``--mpirun-args``
or ``$SEGSCALE_MPIRUN_ARGS`` (e.g. ``-mca btl self,tcp``). Ranks that need no GPU
(``--cpu-ranks``: tf-ps's coordinator and parameter servers) get one more slot on the job's
hosts in turn.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import tempfile
from pathlib import Path

from segscale import cli

PROPERTY = re.compile(r"(\w+)\s*=\s*'([^']*)'")
RANK_SIGNAL = "SIGURG"  # the walltime warning the ranks catch (segscale.train.launch)
FORWARDED = ("PATH", "LD_LIBRARY_PATH", "PYTHONPATH", "VIRTUAL_ENV", "OAR_JOB_ID")
FORWARDED_PREFIXES = ("HOROVOD_", "NCCL_", "TF_", "SEGSCALE_", "CUDA_")


def nodefile_hosts(text: str) -> list[str]:
    """Distinct hosts of ``$OAR_NODEFILE`` (one line per core), in order of appearance."""
    hosts: list[str] = []
    for line in text.splitlines():
        host = line.strip()
        if host and host not in hosts:
            hosts.append(host)
    return hosts


def gpus_by_host(properties_text: str) -> dict[str, int]:
    """GPUs of the job per host, from ``$OAR_RESOURCE_PROPERTIES_FILE`` (one line per
    resource: ``key = 'value' , ...``): distinct ``gpu`` values per ``network_address``."""
    found: dict[str, set[str]] = {}
    for line in properties_text.splitlines():
        props = dict(PROPERTY.findall(line))
        host = props.get("network_address") or props.get("host")
        gpu = props.get("gpu")
        if host and gpu not in (None, "", "0", "NULL"):
            found.setdefault(host, set()).add(gpu)
    return {host: len(gpus) for host, gpus in found.items()}


def machinefile_lines(hosts: list[str], ranks: int, slots: dict[str, int] | None = None,
                      per_node: int | None = None) -> list[str]:
    """One line per rank, host by host: each host gets as many ranks as it has GPUs
    (``slots``), else ``per_node``, else an even share of the ranks.

    Raises:
        ValueError: the job's hosts have fewer GPUs than ranks.
    """
    if not hosts:
        raise ValueError("no hosts in $OAR_NODEFILE")
    slots = slots or {}
    even = -(-ranks // len(hosts))
    lines: list[str] = []
    for host in hosts:
        room = slots.get(host) or per_node or even
        take = min(room, ranks - len(lines))
        lines += [host] * take
        if len(lines) == ranks:
            return lines
    total = sum(slots.get(h) or per_node or even for h in hosts)
    raise ValueError(f"{ranks} ranks asked for, but the job's {len(hosts)} host(s) have "
                     f"{total} GPU slot(s): {hosts}")


def with_cpu_ranks(gpu_lines: list[str], hosts: list[str], cpu_ranks: int) -> list[str]:
    """The GPU ranks' lines, then ``cpu_ranks`` more taking the hosts in turn: processes that
    need no GPU (tf-ps's coordinator and parameter servers) share the job's hosts, one more
    slot each, instead of asking OAR for GPUs they would not use."""
    return [*gpu_lines, *(hosts[k % len(hosts)] for k in range(cpu_ranks))]


def forwarded_variables(environ: dict[str, str]) -> list[str]:
    """Names of the environment variables ``mpirun -x`` passes to every rank."""
    names = [name for name in FORWARDED if name in environ]
    names += sorted(name for name in environ
                    if name.startswith(FORWARDED_PREFIXES) and name not in names)
    return names


def mpirun_argv(ranks: int, machinefile: str, command: list[str], environ: dict[str, str],
                mpirun: str = "mpirun", rsh: str = "oarsh",
                extra: list[str] | None = None) -> list[str]:
    """The mpirun command line."""
    argv = [mpirun, "-np", str(ranks), "-machinefile", machinefile, "--map-by", "node",
            "-mca", "plm_rsh_agent", rsh, "-mca", "ess_base_forward_signals", RANK_SIGNAL]
    for name in forwarded_variables(environ):
        argv += ["-x", name]
    return [*argv, *(extra or []), *command]


def write_machinefile(lines: list[str], environ: dict[str, str]) -> str:
    """The machinefile, in the temporary directory (one per job and rank count)."""
    job = environ.get("OAR_JOB_ID", "nojob")
    path = Path(tempfile.gettempdir()) / f"segscale-oar-{job}-{len(lines)}ranks-{os.getpid()}"
    path.write_text("".join(f"{host}\n" for host in lines))
    return str(path)


def build_parser():
    p = cli.parser("segscale.oar.launch", __doc__)
    p.add_argument("-n", "--ranks", type=int, required=True,
                   help="number of ranks (processes), GPU ranks and CPU ranks together")
    p.add_argument("--cpu-ranks", type=int,
                   default=int(os.environ.get("SEGSCALE_CPU_RANKS") or 0),
                   help="how many of the ranks need no GPU (tf-ps's coordinator and parameter "
                        "servers; default $SEGSCALE_CPU_RANKS, which the train rule sets)")
    p.add_argument("--per-node", type=int, default=None,
                   help="ranks per host when the job's resource properties name no GPUs")
    p.add_argument("--mpirun", default="mpirun")
    p.add_argument("--rsh", default="oarsh", help="OpenMPI's remote shell (plm_rsh_agent)")
    p.add_argument("--mpirun-args", default=os.environ.get("SEGSCALE_MPIRUN_ARGS", ""),
                   help="extra mpirun arguments, one string (default $SEGSCALE_MPIRUN_ARGS)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the rank's command")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    environ = dict(os.environ)
    if not args.command:
        sys.stderr.write("segscale.oar.launch: no command to launch\n")
        return 2
    if args.ranks < 1:
        sys.stderr.write(f"segscale.oar.launch: -n must be at least 1, got {args.ranks}\n")
        return 2
    if not 0 <= args.cpu_ranks < args.ranks:
        sys.stderr.write(f"segscale.oar.launch: --cpu-ranks must be in [0, {args.ranks}) for "
                         f"-n {args.ranks}, got {args.cpu_ranks}\n")
        return 2
    nodefile = environ.get("OAR_NODEFILE") or environ.get("OAR_NODE_FILE")
    if not nodefile:
        sys.stderr.write("segscale.oar.launch: $OAR_NODEFILE is not set: not inside an OAR "
                         "job?\n")
        return 1
    try:
        hosts = nodefile_hosts(Path(nodefile).read_text())
        props = environ.get("OAR_RESOURCE_PROPERTIES_FILE")
        slots = gpus_by_host(Path(props).read_text()) if props and Path(props).exists() else {}
        gpu_ranks = args.ranks - args.cpu_ranks
        lines = with_cpu_ranks(machinefile_lines(hosts, gpu_ranks, slots, args.per_node),
                               hosts, args.cpu_ranks)
        machinefile = write_machinefile(lines, environ)
    except (OSError, ValueError) as err:
        sys.stderr.write(f"segscale.oar.launch: {err}\n")
        return 1
    argv = mpirun_argv(args.ranks, machinefile, args.command, environ, args.mpirun, args.rsh,
                       shlex.split(args.mpirun_args))
    sys.stderr.write(f"segscale.oar.launch: {shlex.join(argv)}\n")
    sys.stderr.flush()
    try:
        os.execvpe(argv[0], argv, environ)
    except OSError as err:
        sys.stderr.write(f"segscale.oar.launch: cannot run {argv[0]!r}: {err}\n")
        return 127
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
