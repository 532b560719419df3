# Local parallelism (Lerat et al. 2022; docs/strategies.md "Local parallelism"): one node's
# cores split into ranks per node x threads per rank, each split a training of the same
# model, data and global batch (the train rule, reused), then a table and a figure of
# images/s per split with the best one. A CPU study: the jobs ask for no GPU.


wildcard_constraints:
    t=r"[1-9]\d*",


use rule train as parallelism_train with:
    output:
        history=f"{PAR_RUN}/history.csv",
        manifest=f"{PAR_RUN}/run.json",
    log:
        "results/logs/parallelism/{dataset}/{arch}/{strategy}/ranks{n}-threads{t}/train.log",
    benchmark:
        "results/benchmarks/parallelism/{dataset}/{arch}/{strategy}/ranks{n}-threads{t}/train.tsv"
    threads: split_cores
    resources:
        tasks=ranks,
        tasks_per_node=None,
        nodes=1,
        gres=None,
        tasks_per_gpu=None,
        mpi=mpi_launcher,
        cpus_per_task=lambda wildcards: int(wildcards.t),
        mem_mb_per_cpu=mem_per_cpu,
        runtime=train_runtime,
        slurm_extra=parallelism_slurm_extra,
        signal_margin_s=walltime_margin,
    params:
        launch=launch_prefix,
        hparams=parallelism_hparams,
        strategy="{strategy}",
        cpu_ranks=0,
        policy=study.BASELINE_POLICY,
        seed="0",
        train=input_folder("train"),
        val=input_folder("val"),
        out=output_folder("manifest"),


rule parallelism_table:
    input:
        parallelism_runs,
    output:
        table=report(
            "results/tables/parallelism.csv",
            caption="../report/parallelism.rst",
            category="Tables",
        ),
        figure=report(
            "results/figures/parallelism.png",
            caption="../report/parallelism.rst",
            category="Scaling",
        ),
        svg="results/figures/parallelism.svg",
    log:
        "results/logs/parallelism/table.log",
    localrule: True
    conda:
        "../../envs/plot.yaml"
    params:
        runs=lambda wildcards, input: " ".join(
            shlex.quote(str(Path(path).parent)) for path in input
        ),
    shell:
        "python -m segscale.report.parallelism --runs {params.runs} --table {output.table:q}"
        " --out-dir results/figures > {log:q} 2>&1"
