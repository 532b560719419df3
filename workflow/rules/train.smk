# One training run per (dataset, arch, policy, GPU count n, repeat r): n Horovod ranks.
# tune.smk reuses this rule (use rule ... with:) for the guideline's trainings.


rule train:
    input:
        train=training_store,
        val=validation_store,
    output:
        history=f"{RUNS}/history.csv",
        manifest=f"{RUNS}/run.json",
        model=f"{RUNS}/model.keras",
    log:
        f"{RUN_LOGS}/train.log",
    benchmark:
        f"{RUN_BENCHMARKS}/train.tsv"
    conda:
        "../../envs/train.yaml"
    threads: ranks
    resources:
        tasks=tasks_for,
        tasks_per_node=tasks_per_node_for,
        nodes=nodes_for,
        gres=gres_per_node,
        tasks_per_gpu=0,
        mpi=mpi_launcher,
        cpus_per_task=cpus_per_rank,
        mem_mb_per_cpu=mem_per_cpu,
        runtime=train_runtime,
        slurm_extra=placement_extra,
    params:
        launch=launch_prefix,
        hparams=hparams_json,
        policy="{policy}",
        seed="{r}",
        train=input_folder("train"),
        val=input_folder("val"),
        out=output_folder("manifest"),
    shell:
        "SRUN_CPUS_PER_TASK={resources.cpus_per_task} python -m segscale.train.env"
        " {params.launch} python -m segscale.train"
        " --train-store {params.train:q} --val-store {params.val:q} --out {params.out:q}"
        " --dataset {wildcards.dataset:q} --arch {wildcards.arch:q} --policy {params.policy:q}"
        " --seed {params.seed:q} --hparams {params.hparams:q} > {log:q} 2>&1"
