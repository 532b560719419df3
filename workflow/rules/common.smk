# Validation, the sweep table and the input/param helpers the rules use. No rules here.
import ast
import itertools
import json
import os
import shlex
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
from snakemake.utils import validate

from segscale import study

validate(config, "../schemas/config.schema.yaml")

DATASETS = config["datasets"]
SPLITS = ("train", "val", "test")


wildcard_constraints:
    dataset="|".join(DATASETS),
    split="|".join(SPLITS),


def dataset_section(name):
    """The dataset's validated config section."""
    return DATASETS[name]


def dataset_root(name):
    """Where the raw MSD task lives: the configured root, or the generated demo folder."""
    section = dataset_section(name)
    if "demo" in section:
        return str(Path(rules.demo_dataset.output.meta.format(dataset=name)).parent)
    return section["root"]


def raw_dataset_json(wildcards):
    """dataset.json of the raw task; for demo datasets this makes the generator run."""
    if "demo" in dataset_section(wildcards.dataset):
        return rules.demo_dataset.output.meta.format(dataset=wildcards.dataset)
    return f"{dataset_root(wildcards.dataset)}/dataset.json"


def listed_volumes(wildcards):
    """Every image and label dataset.json lists (inside the task folder), so a volume edited
    after inspection makes inspect run again. A dataset.json that cannot be read, and paths
    leading out of the task, are left for inspect itself to refuse with the cause named."""
    if "demo" in dataset_section(wildcards.dataset):
        return []  # written by the same job as dataset.json
    root = Path(dataset_root(wildcards.dataset))
    try:
        meta = json.loads((root / "dataset.json").read_text())
        entries = [*meta.get("training", []), *meta.get("test", [])]
        listed = [
            e
            for entry in entries
            for e in (
                [entry] if isinstance(entry, str) else [entry.get("image"), entry.get("label")]
            )
        ]
    except (OSError, ValueError, AttributeError, TypeError):
        return []
    inside = []
    for rel in listed:
        if not isinstance(rel, str) or Path(rel).is_absolute() or ".." in Path(rel).parts:
            continue
        path = root / rel
        if path.exists() and not path.resolve().is_relative_to(root.resolve()):
            continue  # a symlink out of the task: refused by inspect
        inside.append(str(path))
    return sorted(set(inside))


def demo_kind(wildcards):
    """The synthetic task kind (brats or heart) of a demo dataset."""
    return dataset_section(wildcards.dataset)["demo"]


def root_param(wildcards):
    return dataset_root(wildcards.dataset)


def dataset_params_json(wildcards):
    """The dataset's section, root resolved, as JSON for the segscale CLIs."""
    section = dict(dataset_section(wildcards.dataset), root=dataset_root(wildcards.dataset))
    return json.dumps(section, sort_keys=True)


def input_folder(key):
    """A params function: the folder of input ``key`` (a store's manifest, a run's model)."""

    def folder(wildcards, input):
        files = input[key]
        return str(Path(files if isinstance(files, str) else files[0]).parent)

    return folder


def output_folder(key):
    """A params function: the folder of output ``key`` (a store, a run directory)."""

    def folder(wildcards, output):
        return str(Path(output[key]).parent)

    return folder


def train_store_files(wildcards):
    """The un-augmented training store of the dataset."""
    return store_files(wildcards.dataset, "train")


def data_targets(wildcards):
    """Every slice store of every configured dataset (the data stage alone)."""
    names = list(DATASETS)
    augmented = [name for name in names if augmenting(name)]
    return expand(rules.slice_store.output.manifest, dataset=names, split=SPLITS) + expand(
        rules.augment.output.manifest, dataset=augmented
    )


# ---- the sweep ---------------------------------------------------------------------------

SWEEP = config["sweep"]
SWEEP.setdefault("datasets", list(DATASETS))
ARCHS = config.get("archs", {})
RUNS = f"results/runs/{study.RUN_DIR_PATTERN}"  # one run's directory
RUN_LOGS = f"results/logs/runs/{study.RUN_DIR_PATTERN}"
RUN_BENCHMARKS = f"results/benchmarks/runs/{study.RUN_DIR_PATTERN}"
TUNE_DIR = f"results/tune/{study.TUNE_DIR_PATTERN}"  # one guideline loop
TUNE_LOGS = f"results/logs/tune/{study.TUNE_DIR_PATTERN}"
TUNE_BENCHMARKS = f"results/benchmarks/tune/{study.TUNE_DIR_PATTERN}"
TUNE_ITER = f"{TUNE_DIR}/iter{{i}}"  # one guideline iteration


wildcard_constraints:
    arch="|".join(ARCHS) or "unet",
    strategy="|".join(study.STRATEGIES),
    policy="|".join(study.POLICIES),
    n=r"[1-9]\d*",
    r=r"\d+",


def check_sweep_names():
    """Sweep entries must name configured datasets and architectures."""
    for key, known in (("datasets", DATASETS), ("archs", ARCHS)):
        unknown = sorted(set(SWEEP[key]) - set(known))
        if unknown:
            raise ValueError(
                f"config sweep.{key}: {unknown} not defined under '{key}' "
                f"(defined: {sorted(known)})"
            )


check_sweep_names()


ARCH_CONFIGS = {}  # architecture -> its validated TrainConfig (check_parameters)


def check_parameters():
    """The dataset and training parameters, checked as the jobs will check them, so a typo
    stops snakemake before any job instead of failing a queued training run."""
    from segscale.data.params import DatasetParams
    from segscale.models import input_requirements
    from segscale.train.config import TrainConfig

    params = {}
    for name, section in DATASETS.items():
        params[name] = DatasetParams.from_mapping(name, dict(section, root=section.get("root", "")))
        unknown = sorted(set(section.get("lr", {})) - set(ARCHS))
        if unknown:
            raise ValueError(
                f"config datasets.{name}.lr: {unknown} are not architectures under 'archs' "
                f"(defined: {sorted(ARCHS)})"
            )
    configs = {}
    for arch, hparams in ARCHS.items():
        try:
            configs[arch] = ARCH_CONFIGS[arch] = TrainConfig.from_mapping(hparams)
            if study.TUNED_POLICY in SWEEP["policies"] or config.get("guideline"):
                configs[arch].grescale_stages()  # GreScale must leave a stabilisation phase
        except ValueError as err:
            raise ValueError(f"config archs.{arch}: {err}") from None
    # what a strategy cannot do (Horovod-only options) is refused before any job
    for arch, strategy in itertools.product(SWEEP["archs"], SWEEP["strategies"]):
        try:
            configs[arch].check_strategy(strategy)
        except ValueError as err:
            raise ValueError(
                f"config archs.{arch} with sweep.strategies {strategy}: {err}"
            ) from None
    # Every (dataset, arch) of the sweep must build at the dataset's size (built-ins pad to
    # a multiple of 2**poolings and crop back; too small a side, a bad depth or an unknown
    # option is refused here). User builders (hparams.builder, or an arch named
    # 'module:function') need TensorFlow to build, which this environment lacks: they come
    # back unchecked and fail, if at all, when their job builds them. The guideline loop's
    # (dataset, arch) pairs are checked too: they may name ones the sweep does not.
    guideline = config.get("guideline") or {}
    pairs = [*itertools.product(SWEEP["datasets"], SWEEP["archs"])]
    pairs += itertools.product(
        guideline.get("datasets") or SWEEP["datasets"],
        guideline.get("archs") or SWEEP["archs"],
    )
    for name, arch in dict.fromkeys(pairs):  # the sweep's first, each once
        if name not in params or arch not in configs:
            raise ValueError(
                f"config guideline: dataset {name!r} or architecture {arch!r} is not "
                f"defined (datasets: {sorted(params)}, archs: {sorted(configs)})"
            )
        p, cfg = params[name], configs[arch]
        shape = (*p.size, len(p.channels))
        try:
            input_requirements(arch, shape, cfg.model, cfg.builder)
        except ValueError as err:
            raise ValueError(
                f"config archs.{arch} x datasets.{name} (size {list(p.size)}): {err}"
            ) from None


check_parameters()


def sweep_table():
    """One row per run: dataset, arch, strategy, policy, n (GPUs = ranks), r (repeat = seed)."""
    keys = ("datasets", "archs", "strategies", "policies", "gpus")
    grid = itertools.product(*(SWEEP[k] for k in keys), range(SWEEP["repeats"]))
    df = pd.DataFrame(grid, columns=["dataset", "arch", "strategy", "policy", "n", "r"])
    return df[[study.runs_on(p, n) for p, n in zip(df.policy, df.n)]].reset_index(drop=True)


def all_run_metrics(wildcards):
    """metrics.json of every run of the sweep (what the figures depend on)."""
    return expand(rules.evaluate.output.metrics, zip, **sweep_table().to_dict("list"))


def stored_run_metrics(wildcards):
    """With stored_only, only the runs already evaluated: nothing is (re)trained."""
    wanted = all_run_metrics(wildcards)
    if config.get("stored_only"):
        return [path for path in wanted if Path(path).exists()]
    return wanted


def maybe_protected(path):
    """protected() for full studies (config protect_metrics), plain otherwise."""
    return protected(path) if config.get("protect_metrics") else path


def store_files(dataset, split):
    """The four files of a slice store."""
    return expand(rules.slice_store.output, dataset=dataset, split=split)


def store_manifest(dataset, split):
    """A slice store's manifest (the file that stands for the whole store)."""
    return rules.slice_store.output.manifest.format(dataset=dataset, split=split)


def augmenting(dataset):
    """Whether the dataset's training split is augmented (augment.target > 0)."""
    return dataset_section(dataset)["augment"]["target"] > 0


def training_store(wildcards):
    """The augmented training store, or the plain one when augmentation is off."""
    if augmenting(wildcards.dataset):
        return rules.augment.output.manifest.format(dataset=wildcards.dataset)
    return store_manifest(wildcards.dataset, "train")


def validation_store(wildcards):
    return store_manifest(wildcards.dataset, "val")


def test_store(wildcards):
    return store_manifest(wildcards.dataset, "test")


def hparams_json(wildcards):
    """The run's hyper-parameters: the architecture's, with the dataset's lr override."""
    hparams = dict(ARCHS[wildcards.arch])
    lr = dataset_section(wildcards.dataset).get("lr", {})
    if wildcards.arch in lr:
        hparams["lr"] = lr[wildcards.arch]
    return json.dumps(hparams, sort_keys=True)


def cpu_ranks(wildcards):
    """Processes of a run beyond its n GPU ranks: under tf-ps the coordinator and the
    parameter servers (hparams.ps_tasks), which need no GPU; none for the other strategies
    (and for the allreduce microbenchmark, which has no strategy wildcard)."""
    if getattr(wildcards, "strategy", None) != study.PS_STRATEGY:
        return 0
    return 1 + ARCH_CONFIGS[wildcards.arch].ps_tasks


def ranks(wildcards):
    """Processes the launcher starts: one per GPU, plus the CPU ranks of tf-ps."""
    return int(wildcards.n) + cpu_ranks(wildcards)


def full_nodes(wildcards):
    """Whether the ranks fill whole nodes: then placement is pinned per node."""
    n, per_node = int(wildcards.n), config["gpus_per_node"]
    return not cpu_ranks(wildcards) and n > 1 and per_node > 1 and n % per_node == 0


def tasks_for(wildcards):
    """--ntasks, unless the ranks fill whole nodes (then --ntasks-per-node places them)."""
    return None if full_nodes(wildcards) else ranks(wildcards)


def tasks_per_node_for(wildcards):
    """One rank per GPU on every node: without it Slurm may pack 3 of 4 ranks onto a
    2-GPU node (seen with --nodes=2 --ntasks=4)."""
    return config["gpus_per_node"] if full_nodes(wildcards) else None


def nodes_for(wildcards):
    return -(-int(wildcards.n) // config["gpus_per_node"])


def gres_per_node(wildcards):
    return f"gpu:{min(int(wildcards.n), config['gpus_per_node'])}"


def mpi_launcher(wildcards):
    """srun for multi-rank runs; the 1-GPU baseline runs bare (profiles may override)."""
    return "srun" if ranks(wildcards) > 1 else None


def train_runtime(wildcards):
    """Minutes asked for: the 1-GPU estimate shrunk by N ** exponent, with a margin."""
    res = config["train_resources"]
    table = res["one_gpu_runtime"]
    one_gpu = table.get(f"{wildcards.dataset}/{wildcards.arch}", table.get("default", 1440))
    estimate = res["margin"] * one_gpu / int(wildcards.n) ** res["exponent"]
    return max(res["minimum"], int(-(-estimate // 1)))


def cpus_per_rank(wildcards):
    return config["train_resources"]["cpus_per_rank"]


def mem_per_cpu(wildcards):
    return config["train_resources"]["mem_mb_per_cpu"]


def launch_prefix(wildcards, resources):
    """`<launcher> -n <ranks>` for multi-rank runs, nothing for the bare baseline.

    The launcher comes from a profile; it is split and re-quoted word by word so nothing
    configured reaches the shell unquoted.
    """
    launcher = resources.get("mpi")
    if not launcher or launcher == "None":
        return ""
    return shlex.join([*shlex.split(str(launcher)), "-n", str(ranks(wildcards))])


TRAIN_RULES = ("train", "tune_train", "parallelism_train")


def profile_slurm_extra(settings, rule_name=None):
    """A profile's literal slurm_extra string (default-resources, or set-resources of ``rule_name``).

    Raises:
        ValueError: set-resources would replace the training rules' placement flags, or the
            value is an expression rather than a quoted string.
    """
    where = "default-resources" if rule_name is None else f"set-resources {rule_name}"
    if not settings or "slurm_extra" not in settings:
        return ""
    resource = settings["slurm_extra"]
    if rule_name is not None:
        raise ValueError(
            f"profile {where}: slurm_extra would replace the placement flags segscale "
            "computes for training jobs (--ntasks-per-node); put site flags in the config key "
            "train_resources.slurm_extra instead, which is added to them"
        )
    raw = getattr(resource, "raw", resource)
    try:
        value = ast.literal_eval(raw) if isinstance(raw, str) else raw
    except (ValueError, SyntaxError):
        value = raw  # a bare word, as given on the command line without quotes
    if not isinstance(value, str):
        raise ValueError(f"profile {where}: slurm_extra must be a quoted string, got {raw!r}")
    return value


def site_slurm_extra():
    """Site sbatch flags of training jobs: the profile's default slurm_extra, then the
    config's train_resources.slurm_extra; checked once, before any job starts."""
    resource_settings = workflow.resource_settings
    for name in TRAIN_RULES:
        profile_slurm_extra(resource_settings.overwrite_resources.get(name), name)
    flags = [profile_slurm_extra(resource_settings.default_resources)]
    flags.append(config["train_resources"].get("slurm_extra", ""))
    return shlex.join(word for text in flags for word in shlex.split(text))


SITE_SLURM_EXTRA = site_slurm_extra()


def placement_extra(wildcards):
    """The site's flags plus at most one rank per GPU per node when ranks do not fill
    whole nodes (e.g. 5 ranks on 2-GPU nodes, where Slurm could pack 3 onto one node)."""
    n, per_node = int(wildcards.n), config["gpus_per_node"]
    flags = [SITE_SLURM_EXTRA] if SITE_SLURM_EXTRA else []
    nodes = nodes_for(wildcards)
    if cpu_ranks(wildcards) and nodes > 1:
        # tf-ps: the CPU ranks spread too; the workers are spread over the nodes by
        # segscale.train.strategies.ps (at most ceil(n / nodes) <= gpus_per_node each)
        flags.append(f"--ntasks-per-node={-(-ranks(wildcards) // nodes)}")
    elif n > per_node and not full_nodes(wildcards):
        flags.append(f"--ntasks-per-node={per_node}")
    return " ".join(flags) or None


def sweep_run_dirs(wildcards):
    """The sweep's run directories: those without metrics.json are its failed runs."""
    return [str(Path(path).parent) for path in all_run_metrics(wildcards)]


def curve_gpus(wildcards):
    """GPU count of the per-epoch curves figure (default: the largest swept)."""
    return config.get("curve_gpus") or max(SWEEP["gpus"])


# ---- the GreScale guideline loop (tune.smk, docs/guideline.md) ---------------------

TUNE = config.get("guideline", {})
TUNE_SELECTION = ("datasets", "archs", "gpus")  # workflow keys, not segscale.tune.step's


wildcard_constraints:
    i=r"\d+",


def tune_grid():
    """(dataset, arch, n) triples to tune: guideline.datasets/archs/gpus, else the sweep's
    (GPU counts above 1: the 1-GPU run is the baseline itself)."""
    datasets = TUNE.get("datasets") or SWEEP["datasets"]
    archs = TUNE.get("archs") or SWEEP["archs"]
    gpus = TUNE.get("gpus") or [n for n in SWEEP["gpus"] if n > 1]
    return list(itertools.product(datasets, archs, gpus))


def tune_targets(wildcards):
    """The iteration table of every tuned (dataset, arch, n)."""
    grid = tune_grid()
    columns = dict(zip(("dataset", "arch", "n"), zip(*grid))) if grid else {}
    return expand(rules.tune_table.output.table, zip, **columns) if grid else []


def guideline_settings_json(wildcards):
    """The guideline settings for segscale.tune.step (selection keys removed)."""
    settings = {k: v for k, v in TUNE.items() if k not in TUNE_SELECTION}
    return json.dumps(settings, sort_keys=True)


def tune_baseline(wildcards):
    """The sweep's 1-GPU baseline of the same dataset and arch: policy none, repeat 0."""
    return expand(
        rules.evaluate.output.metrics,
        dataset=wildcards.dataset,
        arch=wildcards.arch,
        strategy=study.DEFAULT_STRATEGY,
        policy=study.BASELINE_POLICY,
        n=1,
        r=0,
    )


def tune_plan(wildcards):
    """The plan iteration i trains from: start.json for 0, else decision i - 1."""
    i = int(wildcards.i)
    where = dict(dataset=wildcards.dataset, arch=wildcards.arch, n=wildcards.n)
    if i == 0:
        return rules.tune_start.output.plan.format(**where)
    return checkpoints.tune_step.get(**where, i=i - 1).output.decision


def plan_field(input, key):
    """A key of the plan an iteration trains from (its decision or start.json)."""
    with open(input.plan) as handle:  # missing in a dry run: Snakemake shows <TBD>
        return json.load(handle)[key]


def plan_hparams(wildcards, input):
    """The planned hparams, as JSON for --hparams."""
    return json.dumps(plan_field(input, "hparams"), sort_keys=True)


def plan_seed(wildcards, input):
    """The planned training seed (confirmation runs get a fresh one)."""
    return plan_field(input, "seed")


def tune_final_decision(wildcards):
    """Walk iter0, iter1, ... to the first decision that says done. Each get() waits for
    that checkpoint, so a restarted workflow picks up where the decisions stop."""
    limit = int(TUNE.get("max_iterations", 10))
    for i in range(limit):
        path = checkpoints.tune_step.get(**wildcards, i=i).output.decision
        with open(path) as handle:
            if json.load(handle)["done"]:
                return path
    raise ValueError(
        f"{path}: not done after guideline.max_iterations={limit} iterations "
        "(settings changed mid-loop? delete results/tune/.../iter* to restart)"
    )


# ---- scaling prediction (scaling.smk, docs/prediction.md; owned by segscale.scaling) -------

PREDICTION = config.get("prediction", {})
BENCH = PREDICTION.get("bench", {})
ALLREDUCE_TABLES = "results/scaling/allreduce/gpus{n}.csv"


def predicted_clusters():
    """{name: section} of the clusters to predict (prediction.clusters, default all)."""
    clusters = config.get("clusters", {})
    names = PREDICTION.get("clusters") or list(clusters)
    unknown = sorted(set(names) - set(clusters))
    if unknown:
        raise ValueError(
            f"config prediction.clusters: {unknown} not defined under 'clusters' "
            f"(defined: {sorted(clusters)})"
        )
    return {name: clusters[name] for name in names}


def predicting_from(key, value, default):
    """Whether any predicted cluster has ``key`` (compute, links) equal to ``value``."""
    return any(c.get(key, default) == value for c in predicted_clusters().values())


def bench_gpus():
    """Rank counts of the allreduce microbenchmark (default: the swept counts above 1)."""
    return sorted(set(BENCH.get("gpus") or [n for n in SWEEP["gpus"] if n > 1]))


def allreduce_tables(wildcards):
    """The microbenchmark tables, when a predicted cluster calibrates its links."""
    if not predicting_from("links", "calibrated", "calibrated"):
        return []
    return expand(ALLREDUCE_TABLES, n=bench_gpus())


def measured_runs_table(wildcards):
    """runs.csv, when a predicted cluster takes its compute from the sweep's runs."""
    if predicting_from("compute", "measured", "measured"):
        return [rules.aggregate.output.runs]
    return []


def measured_scaling_table(wildcards):
    if predicting_from("compute", "measured", "measured"):
        return [rules.aggregate.output.scaling]
    return []


def clusters_json(wildcards):
    """The predicted clusters' sections, as JSON for segscale.scaling."""
    return json.dumps(predicted_clusters(), sort_keys=True)


def measured_workloads_json(wildcards):
    """The sweep's (dataset, arch) as segscale.scaling workloads: channels, classes, size,
    model options, per-GPU batch, fp16 allreduce (parameter counts come from these)."""
    from types import SimpleNamespace

    from segscale.data.params import DatasetParams
    from segscale.train.config import TrainConfig

    out = []
    for name, arch in itertools.product(SWEEP["datasets"], SWEEP["archs"]):
        section = dataset_section(name)
        p = DatasetParams.from_mapping(name, dict(section, root=section.get("root", "")))
        hparams = hparams_json(SimpleNamespace(dataset=name, arch=arch))
        cfg = TrainConfig.from_mapping(json.loads(hparams))
        out.append(
            {
                "dataset": name,
                "arch": arch,
                "channels": len(p.channels),
                "classes": p.n_classes,
                "size": list(p.size),
                "model": {k: v for k, v in cfg.model.items() if k != "vgg16_weights"},
                "batch_size": cfg.batch_size,
                "fp16_allreduce": bool(cfg.fp16_allreduce),
            }
        )
    return json.dumps(out, sort_keys=True)


def bench_sizes(wildcards):
    sizes = BENCH.get("sizes") or [4096, 65536, 1048576, 4194304, 16777216, 67108864]
    return " ".join(str(int(s)) for s in sizes)


def bench_runtime(wildcards):
    return BENCH.get("runtime", 15)


def train_launcher(wildcards, input, threads, attempt):
    """The train rule's launcher for ``n`` ranks, as the profile sets it (set-resources
    train: mpi), so the microbenchmark starts its ranks exactly like a training run of the
    strategy it measures, Horovod's allreduce."""
    resource = rules.train.rule.resources.get("mpi")
    if resource is None:
        return mpi_launcher(wildcards)
    as_training = SimpleNamespace(**dict(wildcards.items()), strategy=study.DEFAULT_STRATEGY)
    value = resource.evaluate(
        as_training,
        input=input,
        threads=threads,
        attempt=attempt,
        rulename="train",
        async_run=workflow.async_run,
    )
    return value._value if value.is_evaluable() else value.value


predicted_clusters()  # unknown names stop snakemake before any job


# ---- runs that survive the walltime (train.smk, docs/slurm.md, docs/oar.md) ---------------
# SIGURG, not USR1/TERM: its default action is to ignore it, and without "B:" Slurm signals
# every process of the job steps: for the 1-GPU baseline that step also holds the job's
# Snakemake and shell (the executor's own srun), which USR1 would kill and TERM would make
# Snakemake fail a job that finishes in time. The ranks catch it (segscale.train.launch).
WALLTIME_SIGNAL = "URG"


def walltime_margin(wildcards):
    """Seconds before the training job's walltime at which the scheduler warns the run
    (train_resources.signal_margin_s; 0: no warning). Slurm gets it as --signal
    (train_slurm_extra), OAR as --checkpoint (segscale.oar.submit reads this resource).

    Raises:
        ValueError: a margin not shorter than the job's runtime.
    """
    margin = int(config["train_resources"]["signal_margin_s"])
    runtime_s = 60 * train_runtime(wildcards)
    if margin and margin >= runtime_s:
        raise ValueError(
            f"train_resources.signal_margin_s ({margin} s) must be shorter than the training "
            f"job's runtime ({runtime_s} s for {wildcards.dataset}/{wildcards.arch} on "
            f"{wildcards.n} GPUs)"
        )
    return margin


def walltime_signal_flag(wildcards):
    """sbatch's walltime warning of a training job ("" when the margin is 0)."""
    margin = walltime_margin(wildcards)
    return f"--signal={WALLTIME_SIGNAL}@{margin}" if margin else ""


def train_retries():
    """train_resources.retries in the Snakemake that submits the jobs; 0 in a cluster job's
    own Snakemake (--mode remote), which would otherwise retry inside the allocation, past
    the walltime warning (it comes once) and into the time limit."""
    return config["train_resources"]["retries"] if workflow.is_main_process else 0


def train_slurm_extra(wildcards):
    """The training job's sbatch flags: placement_extra and the walltime warning."""
    flags = [placement_extra(wildcards), walltime_signal_flag(wildcards)]
    return " ".join(flag for flag in flags if flag) or None


# ---- local parallelism (parallelism.smk, docs/strategies.md "Local parallelism") -----------

PARALLELISM = config.get("parallelism") or {}
PAR_RUN = "results/parallelism/{dataset}/{arch}/{strategy}/ranks{n}-threads{t}"


def parallelism_cores():
    """Cores of one node to split (parallelism.cores_per_node; default: this machine's)."""
    return PARALLELISM.get("cores_per_node") or len(os.sched_getaffinity(0))


def parallelism_splits():
    """(ranks per node, threads per rank) pairs of the parallelism target."""
    from segscale.report.parallelism import splits

    return splits(
        parallelism_cores(),
        PARALLELISM.get("ranks_per_node"),
        PARALLELISM.get("threads_per_rank"),
    )


def parallelism_point():
    """The (dataset, arch, strategy) whose splits are measured: the sweep's first by default."""
    return (
        PARALLELISM.get("dataset") or SWEEP["datasets"][0],
        PARALLELISM.get("arch") or SWEEP["archs"][0],
        PARALLELISM.get("strategy") or study.DEFAULT_STRATEGY,
    )


def parallelism_runs(wildcards):
    """run.json of every split."""
    dataset, arch, strategy = parallelism_point()
    return [
        f"{PAR_RUN}/run.json".format(dataset=dataset, arch=arch, strategy=strategy, n=r, t=t)
        for r, t in parallelism_splits()
    ]


def parallelism_hparams(wildcards):
    """The architecture's hparams with the split's threads per rank and its share of the
    global batch (parallelism.global_batch; default: the smallest multiple of every rank
    count that is at least the architecture's batch size)."""
    from segscale.report.parallelism import global_batch

    hparams = json.loads(hparams_json(wildcards))
    batch = PARALLELISM.get("global_batch") or global_batch(
        [r for r, _ in parallelism_splits()], ARCH_CONFIGS[wildcards.arch].batch_size
    )
    if batch % int(wildcards.n):
        raise ValueError(
            f"config parallelism.global_batch {batch} is not a multiple of {wildcards.n} ranks"
        )
    hparams.update(threads_per_rank=int(wildcards.t), batch_size=batch // int(wildcards.n))
    return json.dumps(hparams, sort_keys=True)


def split_cores(wildcards):
    """Cores a split occupies (ranks x threads): local runs of two splits never overlap."""
    return int(wildcards.n) * int(wildcards.t)


def parallelism_slurm_extra(wildcards):
    """Site flags and the walltime warning; all ranks on one node (--ntasks-per-node)."""
    flags = [SITE_SLURM_EXTRA, f"--ntasks-per-node={wildcards.n}", walltime_signal_flag(wildcards)]
    return " ".join(flag for flag in flags if flag)
