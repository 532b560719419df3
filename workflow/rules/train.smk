# One training run per (dataset, arch, policy, GPU count n, repeat r): n Horovod ranks.


rule train:
    input:
        train=training_store,
        val=validation_store,
    output:
        history="results/runs/{dataset}/{arch}/{policy}/gpus{n}/rep{r}/history.csv",
        manifest="results/runs/{dataset}/{arch}/{policy}/gpus{n}/rep{r}/run.json",
        model="results/runs/{dataset}/{arch}/{policy}/gpus{n}/rep{r}/model.keras",
    log:
        "results/logs/runs/{dataset}/{arch}/{policy}/gpus{n}/rep{r}/train.log",
    benchmark:
        "results/benchmarks/runs/{dataset}/{arch}/{policy}/gpus{n}/rep{r}/train.tsv"
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
        train=train_store_dir,
        val=val_store_dir,
        out=run_dir,
    shell:
        'export PATH="$(python -m segscale.train.env)$PATH"'
        " SRUN_CPUS_PER_TASK={resources.cpus_per_task};"
        " {params.launch} python -m segscale.train"
        " --train-store {params.train:q} --val-store {params.val:q} --out {params.out:q}"
        " --dataset {wildcards.dataset} --arch {wildcards.arch} --policy {wildcards.policy}"
        " --seed {wildcards.r} --hparams {params.hparams:q} > {log:q} 2>&1"
