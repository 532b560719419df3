# One training run per (dataset, arch, strategy, policy, GPU count n, repeat r): n ranks
# (tf-ps: plus its coordinator and parameter servers, CPU ranks: common.smk cpu_ranks).
# tune.smk reuses this rule (use rule ... with:) for the guideline's trainings. A failure a
# retry can fix fails the job; the run's own failure becomes a `failed` run.json and the job
# succeeds, so the sweep's tables and figures still come (segscale.train.failure).
# model.keras is not declared: a failed run has none; run.json records its sha256 and
# predict checks it.
# Runs that survive the walltime (docs/slurm.md, docs/oar.md): Slurm sends SIGURG
# signal_margin_s before the walltime (train_slurm_extra); OAR sends its checkpoint signal,
# which segscale.oar.job relays as SIGURG; the ranks checkpoint and exit 75, the job fails and
# comes back (retries: train_resources.retries) resuming with its history. srun stops every
# rank when one dies (SLURM_KILL_BAD_EXIT: a lost node fails the job at once, not at the
# walltime); the retry resumes from the last verified checkpoint.


rule train:
    input:
        train=training_store,
        val=validation_store,
    output:
        history=f"{RUNS}/history.csv",
        manifest=f"{RUNS}/run.json",
    log:
        f"{RUN_LOGS}/train.log",
    benchmark:
        f"{RUN_BENCHMARKS}/train.tsv"
    retries: train_retries()
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
        slurm_extra=train_slurm_extra,
        signal_margin_s=walltime_margin,
    params:
        launch=launch_prefix,
        hparams=hparams_json,
        strategy="{strategy}",
        cpu_ranks=cpu_ranks,
        policy="{policy}",
        seed="{r}",
        train=input_folder("train"),
        val=input_folder("val"),
        out=output_folder("manifest"),
    shell:
        "SLURM_KILL_BAD_EXIT=1 SRUN_CPUS_PER_TASK={resources.cpus_per_task}"
        " SEGSCALE_CPU_RANKS={params.cpu_ranks}"
        " python -m segscale.train.env"
        " {params.launch} python -m segscale.train"
        " --train-store {params.train:q} --val-store {params.val:q} --out {params.out:q}"
        " --dataset {wildcards.dataset:q} --arch {wildcards.arch:q} --policy {params.policy:q}"
        " --strategy {params.strategy:q} --seed {params.seed:q} --hparams {params.hparams:q}"
        " > {log:q} 2>&1"
        " || python -m segscale.train.failure --exit-code $? --out {params.out:q}"
        " --dataset {wildcards.dataset:q} --arch {wildcards.arch:q} --policy {params.policy:q}"
        " --strategy {params.strategy:q}"
        " --seed {params.seed:q} --ranks {wildcards.n} --hparams {params.hparams:q}"
        " >> {log:q} 2>&1"
