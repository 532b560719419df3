# Predicting scaling beyond the machine (docs/prediction.md): an allreduce microbenchmark
# placed exactly like a training run of n ranks, then the alpha-beta model calibrated from
# it and from the sweep's 1-GPU runs, per configured cluster, for N up to
# prediction.max_gpus, with measured and published points.


rule allreduce_bench:
    output:
        table=ALLREDUCE_TABLES,
    log:
        "results/logs/scaling/allreduce_gpus{n}.log",
    benchmark:
        "results/benchmarks/scaling/allreduce_gpus{n}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: ranks
    resources:
        tasks=tasks_for,
        tasks_per_node=tasks_per_node_for,
        nodes=nodes_for,
        gres=gres_per_node,
        tasks_per_gpu=0,
        mpi=train_launcher,
        cpus_per_task=cpus_per_rank,
        mem_mb_per_cpu=mem_per_cpu,
        runtime=bench_runtime,
        slurm_extra=placement_extra,
    params:
        launch=launch_prefix,
        sizes=bench_sizes,
        repeats=BENCH.get("repeats", 10),
        warmup=BENCH.get("warmup", 2),
    shell:
        "SRUN_CPUS_PER_TASK={resources.cpus_per_task} python -m segscale.train.env"
        " {params.launch} python -m segscale.train.allreduce_bench --sizes {params.sizes}"
        " --repeats {params.repeats} --warmup {params.warmup} --expect-ranks {wildcards.n}"
        " --out {output.table:q} > {log:q} 2>&1"


rule predicted_scaling:
    input:
        bench=allreduce_tables,
        runs=measured_runs_table,
        scaling=measured_scaling_table,
    output:
        table=report(
            "results/tables/predicted_scaling.csv",
            caption="../report/predicted_scaling.rst",
            category="Tables",
        ),
        record="results/tables/predicted_scaling.json",
        figure=report(
            "results/figures/predicted_scaling.png",
            caption="../report/predicted_scaling.rst",
            category="Scaling",
        ),
        svg="results/figures/predicted_scaling.svg",
    log:
        "results/logs/scaling/predict.log",
    localrule: True
    conda:
        "../../envs/plot.yaml"
    params:
        clusters=clusters_json,
        workloads=measured_workloads_json,
        max_gpus=PREDICTION.get("max_gpus", 512),
        per_decade=PREDICTION.get("per_decade", 8),
        extra=" ".join(str(n) for n in PREDICTION.get("extra_gpus", [18])),
        policy=PREDICTION.get("policy", study.BASELINE_POLICY),
        gpus_per_node=config["gpus_per_node"],
        runs=lambda wildcards, input: f"--runs {input.runs[0]}" if input.runs else "",
        scaling=lambda wildcards, input: f"--scaling {input.scaling[0]}" if input.scaling else "",
    shell:
        "python -m segscale.scaling --clusters {params.clusters:q} --workloads {params.workloads:q}"
        " {params.runs} {params.scaling} --bench {input.bench:q}"
        " --max-gpus {params.max_gpus} --per-decade {params.per_decade}"
        " --extra-gpus {params.extra} --policy {params.policy:q}"
        " --gpus-per-node {params.gpus_per_node} --out {output.table:q}"
        " --record {output.record:q} --figure {output.figure:q} --figure-svg {output.svg:q}"
        " > {log:q} 2>&1"
