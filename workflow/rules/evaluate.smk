# Predict the test split with a run's final model, then score it (no TensorFlow there).


rule predict:
    input:
        model=rules.train.output.model,
        manifest=rules.train.output.manifest,
        store=test_store,
    output:
        pred=temp("results/runs/{dataset}/{arch}/{policy}/gpus{n}/rep{r}/pred.npy"),
        inference="results/runs/{dataset}/{arch}/{policy}/gpus{n}/rep{r}/inference.json",
    log:
        "results/logs/runs/{dataset}/{arch}/{policy}/gpus{n}/rep{r}/predict.log",
    benchmark:
        "results/benchmarks/runs/{dataset}/{arch}/{policy}/gpus{n}/rep{r}/predict.tsv"
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


rule evaluate:
    input:
        pred=rules.predict.output.pred,
        inference=rules.predict.output.inference,
        manifest=rules.train.output.manifest,
        store=test_store,
    output:
        metrics=maybe_protected(
            "results/runs/{dataset}/{arch}/{policy}/gpus{n}/rep{r}/metrics.json"
        ),
        predictions=directory("results/runs/{dataset}/{arch}/{policy}/gpus{n}/rep{r}/predictions"),
    log:
        "results/logs/runs/{dataset}/{arch}/{policy}/gpus{n}/rep{r}/evaluate.log",
    benchmark:
        "results/benchmarks/runs/{dataset}/{arch}/{policy}/gpus{n}/rep{r}/evaluate.tsv"
    conda:
        "../../envs/data.yaml"
    params:
        store=test_store_dir,
    shell:
        "python -m segscale.evaluate --store {params.store:q} --pred {input.pred:q}"
        " --inference {input.inference:q} --run {input.manifest:q}"
        " --metrics {output.metrics:q} --predictions-dir {output.predictions:q} > {log:q} 2>&1"
