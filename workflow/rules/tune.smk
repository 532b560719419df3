# The GreScale guideline loop (thesis 6.3.3, fig. 6.3; docs/guideline.md), per (dataset,
# arch, GPU count n): start plan -> iteration i = train (grescale) + predict + evaluate
# -> tune_step checkpoint writing iter{i}/decision.json (next hparams, or done) -> i + 1.
# The iteration table is the target; its input walks the decisions, so restarts resume.
# Helpers (tune_grid, tune_plan, tune_final_decision, ...) are in common.smk.


rule tune_start:
    output:
        plan="results/tune/{dataset}/{arch}/gpus{n}/start.json",
    log:
        "results/logs/tune/{dataset}/{arch}/gpus{n}/start.log",
    localrule: True
    conda:
        "../../envs/data.yaml"
    params:
        hparams=hparams_json,
        guideline=guideline_settings_json,
    shell:
        "python -m segscale.tune.step --start --hparams {params.hparams:q}"
        " --gpus {wildcards.n} --config {params.guideline:q} --out {output.plan:q} > {log:q} 2>&1"


rule tune_train:
    input:
        train=training_store,
        val=validation_store,
        plan=tune_plan,
    output:
        history="results/tune/{dataset}/{arch}/gpus{n}/iter{i}/history.csv",
        manifest="results/tune/{dataset}/{arch}/gpus{n}/iter{i}/run.json",
        model="results/tune/{dataset}/{arch}/gpus{n}/iter{i}/model.keras",
    log:
        "results/logs/tune/{dataset}/{arch}/gpus{n}/iter{i}/train.log",
    benchmark:
        "results/benchmarks/tune/{dataset}/{arch}/gpus{n}/iter{i}/train.tsv"
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
        hparams=plan_hparams,
        seed=plan_seed,
        policy="grescale",
        train=train_store_dir,
        val=val_store_dir,
        out=run_dir,
    shell:
        'export PATH="$(python -m segscale.train.env)$PATH"'
        " SRUN_CPUS_PER_TASK={resources.cpus_per_task};"
        " {params.launch} python -m segscale.train"
        " --train-store {params.train:q} --val-store {params.val:q} --out {params.out:q}"
        " --dataset {wildcards.dataset} --arch {wildcards.arch} --policy {params.policy}"
        " --seed {params.seed} --hparams {params.hparams:q} > {log:q} 2>&1"


rule tune_predict:
    input:
        model=rules.tune_train.output.model,
        manifest=rules.tune_train.output.manifest,
        store=test_store,
    output:
        pred=temp("results/tune/{dataset}/{arch}/gpus{n}/iter{i}/pred.npy"),
        inference="results/tune/{dataset}/{arch}/gpus{n}/iter{i}/inference.json",
    log:
        "results/logs/tune/{dataset}/{arch}/gpus{n}/iter{i}/predict.log",
    benchmark:
        "results/benchmarks/tune/{dataset}/{arch}/gpus{n}/iter{i}/predict.tsv"
    conda:
        "../../envs/train.yaml"
    resources:
        gres="gpu:1",
        cpus_per_task=cpus_per_rank,
        mem_mb_per_cpu=mem_per_cpu,
        runtime=60,
    params:
        run=model_run_dir,
        store=test_store_dir,
    shell:
        'export PATH="$(python -m segscale.train.env)$PATH";'
        " python -m segscale.evaluate.predict --run {params.run:q} --store {params.store:q}"
        " --pred {output.pred:q} --inference {output.inference:q} > {log:q} 2>&1"


rule tune_evaluate:
    input:
        pred=rules.tune_predict.output.pred,
        inference=rules.tune_predict.output.inference,
        manifest=rules.tune_train.output.manifest,
        store=test_store,
    output:
        metrics="results/tune/{dataset}/{arch}/gpus{n}/iter{i}/metrics.json",
        predictions=directory("results/tune/{dataset}/{arch}/gpus{n}/iter{i}/predictions"),
    log:
        "results/logs/tune/{dataset}/{arch}/gpus{n}/iter{i}/evaluate.log",
    benchmark:
        "results/benchmarks/tune/{dataset}/{arch}/gpus{n}/iter{i}/evaluate.tsv"
    conda:
        "../../envs/data.yaml"
    params:
        store=test_store_dir,
    shell:
        "python -m segscale.evaluate --store {params.store:q} --pred {input.pred:q}"
        " --inference {input.inference:q} --run {input.manifest:q}"
        " --metrics {output.metrics:q} --predictions-dir {output.predictions:q} > {log:q} 2>&1"


checkpoint tune_step:
    input:
        metrics=rules.tune_evaluate.output.metrics,
        baseline=tune_baseline,
        plan=tune_plan,
    output:
        decision="results/tune/{dataset}/{arch}/gpus{n}/iter{i}/decision.json",
    log:
        "results/logs/tune/{dataset}/{arch}/gpus{n}/iter{i}/step.log",
    localrule: True
    conda:
        "../../envs/data.yaml"
    params:
        hparams=plan_hparams,
        guideline=guideline_settings_json,
    shell:
        "python -m segscale.tune.step --metrics {input.metrics:q} --baseline {input.baseline:q}"
        " --previous {input.plan:q} --hparams {params.hparams:q} --gpus {wildcards.n}"
        " --config {params.guideline:q} --out {output.decision:q} > {log:q} 2>&1"


rule tune_table:
    input:
        decision=tune_final_decision,
    output:
        table="results/tune/{dataset}/{arch}/gpus{n}/iterations.csv",
    log:
        "results/logs/tune/{dataset}/{arch}/gpus{n}/table.log",
    localrule: True
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m segscale.tune.step --table {input.decision:q} --out {output.table:q}"
        " > {log:q} 2>&1"
