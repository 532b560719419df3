"""The study's vocabulary: the words every stage and the workflow share, spelled once.

Train writes them, evaluate and report read them back, tune reasons with them and
``workflow/rules/common.smk`` builds the sweep from them; the config schema's enums are checked
against them by a test. Imports nothing of the package (an import-linter contract), so any
stage, with or without TensorFlow, can use it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

# ---- learning-rate warmup policies -------------------------------------------------------
#: The policies, in the order tables and figures list them.
POLICIES = ("none", "constant", "gradual", "grescale")
#: Warmup-only policies: on one GPU there is nothing to warm up to (target lr = base lr), so
#: they are the same run as ``none`` and the sweep runs them only for N > 1.
PURE_WARMUPS = ("constant", "gradual")
#: The policy of the 1-GPU baseline that speedups and accuracies are compared against.
BASELINE_POLICY = "none"
#: The policy the GreScale guideline loop (tune) trains with.
TUNED_POLICY = "grescale"

# ---- distributed strategies (segscale.train.strategies) -----------------------------------
#: How the ranks of a run train together, in the order tables and figures list them:
#: Horovod's ring-allreduce, TensorFlow's MultiWorkerMirroredStrategy and its
#: ParameterServerStrategy.
STRATEGIES = ("horovod", "tf-collective", "tf-ps")
#: The strategy of runs that name none (and of run directories from before the axis).
DEFAULT_STRATEGY = "horovod"
#: The strategy whose runs add CPU processes to their GPU ranks: a coordinator and
#: ``hparams.ps_tasks`` parameter servers (segscale.train.strategies.ps).
PS_STRATEGY = "tf-ps"

# ---- run outcomes ------------------------------------------------------------------------
OK, DIVERGED, FAILED = "ok", "diverged", "failed"
#: ``status`` of a finished run record (``run.json``, ``metrics.json``, the run tables).
STATUSES = (OK, DIVERGED, FAILED)
#: Why a training left ``fit`` early (``stop_reason``); an early-stopped run is still ``ok``.
PREEMPTED, EARLY_STOPPED = "preempted", "early_stopped"
STOP_REASONS = (DIVERGED, PREEMPTED, EARLY_STOPPED)

# ---- records -----------------------------------------------------------------------------
#: Where an epoch's time went (seconds; docs/training.md, "Where the time goes"): the first
#: four are inside ``epoch_time_s`` (each the mean over ranks), ``checkpoint_s`` follows it.
BREAKDOWN_COLUMNS = ("compute_s", "allreduce_s", "input_wait_s", "validation_s",
                     "checkpoint_s")
#: Columns of a run's ``history.csv``, one row per epoch. ``startup_s`` (slowest rank's process
#: start to first step) is on the first epoch each training process ran (a resumed run's
#: first epoch after the resume has its own), NaN on the others: their sum is the run's.
HISTORY_COLUMNS = ("epoch", "lr", "loss", "val_loss", "val_dice", "epoch_time_s",
                   "images_per_s", "ranks", *BREAKDOWN_COLUMNS, "startup_s")
#: Columns of a rank's resource samples (``resources/rank{k}.csv``).
RESOURCE_COLUMNS = ("time_s", "cpu_percent", "rss_mb", "gpu_util", "gpu_mem_mb",
                    "net_sent_bytes", "net_recv_bytes")
#: What identifies one run of the sweep in every table.
RUN_KEYS = ("dataset", "arch", "strategy", "policy", "gpus", "repeat")
#: One configuration: a run without its repeat.
CONFIG_KEYS = RUN_KEYS[:-1]
#: The files of a run directory (docs/formats.md).
RUN_RECORD, HISTORY_FILE, MODEL_FILE, METRICS_FILE = (
    "run.json", "history.csv", "model.keras", "metrics.json")

# ---- where a run lives -------------------------------------------------------------------
#: A run's directory below the results root, as a ``str.format`` / Snakemake pattern.
RUN_DIR_PATTERN = "{dataset}/{arch}/{strategy}/{policy}/gpus{n}/rep{r}"
#: The same, read back: only the last six path components count, so any root works.
RUN_DIR_RE = re.compile(
    r"(?P<dataset>[^/]+)/(?P<arch>[^/]+)/(?P<strategy>" + "|".join(map(re.escape, STRATEGIES))
    + r")/(?P<policy>[^/]+)/gpus(?P<gpus>[1-9]\d*)/rep(?P<repeat>\d+)$")
#: Run directories written before the strategy axis (Horovod's): five components.
LEGACY_RUN_DIR_RE = re.compile(
    r"(?P<dataset>[^/]+)/(?P<arch>[^/]+)/(?P<policy>[^/]+)"
    r"/gpus(?P<gpus>[1-9]\d*)/rep(?P<repeat>\d+)$")


#: One tuned (dataset, arch, GPU count) of the guideline loop, below ``results/tune``.
TUNE_DIR_PATTERN = "{dataset}/{arch}/gpus{n}"
TUNE_DIR_RE = re.compile(r"(?P<dataset>[^/]+)/(?P<arch>[^/]+)/gpus(?P<gpus>[1-9]\d*)$")


def parse_tune_dir(path: str) -> dict[str, Any] | None:
    """The (dataset, arch, gpus) a guideline loop's folder encodes, or None."""
    tail = "/".join(str(path).replace("\\", "/").rstrip("/").split("/")[-3:])
    found = TUNE_DIR_RE.search(tail)
    if found is None:
        return None
    point: dict[str, Any] = found.groupdict()
    point["gpus"] = int(point["gpus"])
    return point


def run_dir(dataset: str, arch: str, policy: str, n: int | str, r: int | str,
            strategy: str = DEFAULT_STRATEGY) -> str:
    """The run directory of one sweep point, relative to the runs root."""
    return RUN_DIR_PATTERN.format(dataset=dataset, arch=arch, strategy=strategy, policy=policy,
                                  n=n, r=r)


def parse_run_dir(path: str) -> dict[str, Any] | None:
    """The sweep point a run directory encodes (``gpus``, ``repeat`` as int), or None.

    A directory from before the strategy axis (``<dataset>/<arch>/<policy>/gpus<N>/rep<r>``)
    is read as a ``horovod`` run, the only strategy there was, so stored results stay usable.
    """
    parts = str(path).replace("\\", "/").rstrip("/").split("/")
    found = RUN_DIR_RE.search("/".join(parts[-6:]))
    if found is None:
        found = LEGACY_RUN_DIR_RE.search("/".join(parts[-5:]))
        if found is None:
            return None
    point: dict[str, Any] = {"strategy": DEFAULT_STRATEGY, **found.groupdict()}
    point["gpus"], point["repeat"] = int(point["gpus"]), int(point["repeat"])
    return {key: point[key] for key in RUN_KEYS}


def runs_on(policy: str, gpus: int) -> bool:
    """Whether the sweep runs ``policy`` at ``gpus`` (pure warmups only for N > 1)."""
    return gpus > 1 or policy not in PURE_WARMUPS


# ---- the run record (run.json) -----------------------------------------------------------
@dataclass
class RunRecord:
    """``run.json``: what one training run was and how it ended, written by rank 0 from this
    one dataclass whether the run finished, diverged or failed (unknown fields stay None).

    Its field names are the record's vocabulary: report reads them back by these names.
    """

    status: str
    dataset: str
    arch: str
    policy: str
    n_ranks: int
    repeat: int
    seed: int
    hparams: dict[str, Any]
    epochs_planned: int
    environment: dict[str, Any] = field(default_factory=dict)
    strategy: str = DEFAULT_STRATEGY
    strategy_details: dict[str, Any] | None = None  # e.g. Horovod's controller, TF's workers
    stop_reason: str | None = None
    error: str | None = None
    divergence: dict[str, Any] | None = None
    epochs_completed: int | None = None
    train_time_s: float | None = None
    hosts: list[str] | None = None
    resumed_from_epoch: int | None = None
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    # the work (strong scaling): global images per epoch, the 1-GPU run's for the same store,
    # batch and caps (equal unless rounded to whole global batches), and over whole epochs
    images_per_epoch: int | None = None
    images_per_epoch_1gpu: int | None = None
    val_images_per_epoch: int | None = None
    images_seen: int | None = None
    global_batch: int | None = None
    lr_target: float | None = None
    image_shape: list[int] | None = None
    model_input: dict[str, Any] | None = None  # padding to the model's multiple, cropped back
    n_classes: int | None = None
    model_sha256: str | None = None  # of model.keras, written before this record
    train_store: str | None = None
    val_store: str | None = None
    device: str | None = None
    rank_devices: list[str] | None = None  # per rank: host, GPU kept visible, memory growth
    horovod: dict[str, bool] | None = None  # horovod runs: MPI or Gloo controller
    fingerprint: str | None = None
    rank_weight_digests: list[str] | None = None
    rank_seeds: list[int] | None = None  # each rank's dropout seed (train.record.rank_seed)
    startup_s: float | None = None  # rank process created -> first training step (slowest)
    timeline: str | None = None  # Horovod's timeline file, when one was recorded

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"run status {self.status!r} is not one of {STATUSES}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"run strategy {self.strategy!r} is not one of {STRATEGIES}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
