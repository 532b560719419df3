"""The sweep's DAG: job counts of the full thesis study, Slurm resource mapping per run,
single-point targets, and figures from stored results scheduling no training."""

from __future__ import annotations

import re

import pytest

from .helpers import REPO, snakemake, thesis_config_on_demo_data

pytestmark = pytest.mark.slow
DEMO_CONFIG = REPO / "config" / "config.yaml"


def _job_counts(text: str) -> dict[str, int]:
    block = text[text.index("Job stats:"):]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M)}


def _train_jobs(text: str) -> list[dict]:
    """wildcards and resources of every train job in a dry run's output."""
    jobs = []
    for block in text.split("rule train:")[1:]:
        wild = dict(re.findall(r"(\w+)=([^,\s]+)", re.search(r"wildcards: (.*)", block)[1]))
        res = dict(re.findall(r"(\w+)=([^,\s]+)", re.search(r"resources: (.*)", block)[1]))
        shell = re.search(r"Shell command: (.*)", block)
        jobs.append({**wild, **{f"res_{k}": v for k, v in res.items()},
                     "shell": shell[1] if shell else ""})
    return jobs


@pytest.fixture(scope="module")
def thesis_config(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("thesis")
    return tmp, thesis_config_on_demo_data(tmp)


def test_full_thesis_sweep_builds_its_dag(thesis_config):
    workdir, config = thesis_config
    proc = snakemake(workdir, "-n", "-p", "--profile", str(REPO / "profiles" / "slurm"),
                     "--configfile", str(config), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = _job_counts(proc.stdout)
    # 2 datasets x 2 archs x (9 GPU counts > 1 x 3 policies + 1 GPU x {none, grescale}) x 5
    assert counts["train"] == counts["predict"] == counts["evaluate"] == 2 * 2 * 29 * 5
    assert counts["aggregate"] == counts["plots"] == 1
    jobs = {(j["dataset"], j["arch"], j["policy"], j["n"], j["r"]): j
            for j in _train_jobs(proc.stdout)}
    big = jobs[("brats", "unet", "gradual", "18", "4")]
    # 18 ranks fill 9 two-GPU nodes: placed per node, not as a task total
    assert (big["res_tasks_per_node"], big["res_nodes"], big["res_gres"]) == ("2", "9", "gpu:2")
    assert "res_tasks" not in big
    # runtime = max(15, ceil(1.5 * 1300 / 18 ** 0.9)) minutes
    assert big["res_runtime"] == "145"
    assert "srun -n 18 python -m segscale.train" in big["shell"]
    assert "'lr\": 1e-05" not in big["shell"] and '"lr": 1e-05' in big["shell"]
    lasc = jobs[("lasc", "fcn", "none", "1", "0")]
    assert (lasc["res_tasks"], lasc["res_nodes"], lasc["res_gres"]) == ("1", "1", "gpu:1")
    assert "res_mpi" not in lasc and " -n 1 " not in lasc["shell"]
    assert '"lr": 3e-05' in lasc["shell"]  # the dataset's lr override for the FCN


@pytest.mark.parametrize(("n", "tasks", "nodes", "gres", "launch"), [
    ("1", ("1", None), "1", "gpu:1", None),
    ("2", (None, "2"), "1", "gpu:2", "srun -n 2 python"),
    ("3", ("3", None), "2", "gpu:2", "srun -n 3 python"),
    ("4", (None, "2"), "2", "gpu:2", "srun -n 4 python"),
])
def test_one_point_is_one_job_with_its_slurm_shape(tmp_path, n, tasks, nodes, gres, launch):
    target = f"results/runs/demo-heart/unet/horovod/none/gpus{n}/rep0/metrics.json"
    proc = snakemake(tmp_path, "-n", "-p", "--profile", str(REPO / "profiles" / "slurm"),
                     "--configfile", str(DEMO_CONFIG), "--", target, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = _job_counts(proc.stdout)
    assert counts["train"] == counts["predict"] == counts["evaluate"] == 1
    assert "aggregate" not in counts
    (job,) = _train_jobs(proc.stdout)
    assert (job.get("res_tasks"), job.get("res_tasks_per_node")) == tasks
    assert (job["res_nodes"], job["res_gres"]) == (nodes, gres)
    if launch:
        assert launch in job["shell"]
    else:
        assert "srun" not in job["shell"]


def test_figures_from_stored_results_schedule_no_training(tmp_path):
    proc = snakemake(tmp_path, "-n", "--profile", str(REPO / "profiles" / "local"),
                     "--configfile", str(DEMO_CONFIG), "--config", "stored_only=True", "--",
                     "figures", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = _job_counts(proc.stdout)
    # tables, then figures drawn from them only: no data, training or evaluation job
    assert set(counts) == {"aggregate", "plots", "time_to_accuracy", "breakdown", "figures",
                           "total"}


def test_unknown_sweep_entry_is_named(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("sweep: {archs: [resnet]}\n")
    proc = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config" / "config.yaml"),
                     str(config), "--cores", "1", timeout=120)
    assert proc.returncode != 0
    assert "sweep.archs: ['resnet'] not defined" in proc.stdout + proc.stderr


def _slurm_extra(text: str) -> str:
    """The slurm_extra resource of the (one) train job of a dry run."""
    block = text.split("rule train:")[1]
    return re.search(r"slurm_extra=(.*?), slurm_account=", block)[1]


def test_site_slurm_extra_adds_to_the_placement_flags(tmp_path):
    """3 ranks on 2-GPU nodes need --ntasks-per-node=2; the site's flags (config, then the
    profile's default-resources) come with it instead of replacing it."""
    site = tmp_path / "site.yaml"
    site.write_text("train_resources:\n  one_gpu_runtime: {default: 30}\n"
                    "  slurm_extra: \"--exclusive --constraint='ib&gpu'\"\n")
    proc = snakemake(tmp_path, "-n", "-p", "--profile", str(REPO / "profiles" / "slurm"),
                     "--configfile", str(DEMO_CONFIG), str(site), "--default-resources",
                     "slurm_extra='--qos=high'", "slurm_account='x'", "--",
                     "results/runs/demo-heart/unet/horovod/none/gpus3/rep0/metrics.json",
                     timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _slurm_extra(proc.stdout) == \
        "--qos=high --exclusive '--constraint=ib&gpu' --ntasks-per-node=2 --signal=URG@300"
    # the same margin for OAR's --checkpoint (segscale.oar.submit reads the resource)
    assert "signal_margin_s=300" in proc.stdout.split("rule train:")[1]


def test_profile_slurm_extra_on_training_is_refused(tmp_path):
    proc = snakemake(tmp_path, "-n", "--profile", str(REPO / "profiles" / "slurm"),
                     "--configfile", str(DEMO_CONFIG), "--set-resources",
                     "train:slurm_extra='--exclusive'", timeout=300)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "profile set-resources train: slurm_extra would replace the placement flags" in out
    assert "train_resources.slurm_extra" in out


def test_strategy_axis_doubles_the_runs_and_picks_each_launcher(tmp_path):
    """Two strategies: every run twice, in its own directory; the local profile launches
    Horovod's ranks with horovodrun and TensorFlow's with segscale.train.spawn."""
    config = tmp_path / "c.yaml"
    config.write_text("sweep: {strategies: [horovod, tf-collective], policies: [none],"
                      " gpus: [1, 2]}\n")
    proc = snakemake(tmp_path, "-n", "-p", "--profile", str(REPO / "profiles" / "local"),
                     "--configfile", str(DEMO_CONFIG), str(config), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = _train_jobs(proc.stdout)
    per_point = {(j["dataset"], j["arch"]) for j in jobs}
    assert sorted((j["strategy"], j["n"]) for j in jobs) == sorted(
        [("horovod", "1"), ("horovod", "2"), ("tf-collective", "1"), ("tf-collective", "2")]
        * len(per_point))
    for job in jobs:
        assert f"--strategy {job['strategy']}" in job["shell"]
        assert f"/{job['arch']}/{job['strategy']}/none/gpus{job['n']}/rep0" in job["shell"]
        launcher = {"horovod": "horovodrun --gloo -n 2 python -m segscale.train ",
                    "tf-collective": "python -m segscale.train.spawn -n 2 python -m "
                                     "segscale.train "}[job["strategy"]]
        assert (launcher in job["shell"]) == (job["n"] == "2"), job["shell"]


@pytest.mark.parametrize(("yaml_text", "message"), [
    ("sweep: {strategies: [tf-collective]}\narchs: {unet: {fp16_allreduce: true}}\n",
     "config archs.unet with sweep.strategies tf-collective: hparams fp16_allreduce: "
     "Horovod's"),
    ("sweep: {strategies: [tf-ps]}\narchs: {unet: {timeline: true}}\n",
     "config archs.unet with sweep.strategies tf-ps: hparams timeline"),
])
def test_what_a_strategy_cannot_do_is_refused_before_any_job(tmp_path, yaml_text, message):
    config = tmp_path / "c.yaml"
    config.write_text(yaml_text)
    proc = snakemake(tmp_path, "-n", "--configfile", str(DEMO_CONFIG), str(config),
                     "--cores", "1", timeout=300)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-3000:]
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(("n", "ps", "tasks", "nodes", "gres", "extra"), [
    ("1", 1, "3", "1", "gpu:1", None),
    ("2", 1, "4", "1", "gpu:2", None),
    ("4", 2, "7", "2", "gpu:2", "--ntasks-per-node=4"),
])
def test_tf_ps_job_counts_its_coordinator_and_servers(tmp_path, n, ps, tasks, nodes, gres,
                                                      extra):
    """A tf-ps run of n GPUs is n workers + ps_tasks servers + 1 coordinator: that many
    Slurm tasks on the n GPUs' nodes (the 1-GPU run too is launched), spread evenly over
    the nodes; SEGSCALE_CPU_RANKS tells the launchers how many need no GPU."""
    config = tmp_path / "c.yaml"
    config.write_text(f"sweep: {{strategies: [tf-ps]}}\narchs: {{unet: {{ps_tasks: {ps}}}}}\n")
    target = f"results/runs/demo-heart/unet/tf-ps/none/gpus{n}/rep0/metrics.json"
    proc = snakemake(tmp_path, "-n", "-p", "--profile", str(REPO / "profiles" / "slurm"),
                     "--configfile", str(DEMO_CONFIG), str(config), "--", target, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (job,) = _train_jobs(proc.stdout)
    assert (job.get("res_tasks"), job.get("res_tasks_per_node")) == (tasks, None)
    assert (job["res_nodes"], job["res_gres"]) == (nodes, gres)
    assert f"srun -n {tasks} python -m segscale.train " in job["shell"]
    assert f"SEGSCALE_CPU_RANKS={ps + 1} " in job["shell"]
    flags = re.search(r"slurm_extra=(.*?), signal_margin_s=", proc.stdout)[1]
    assert (extra in flags.split()) if extra else "--ntasks-per-node" not in flags
