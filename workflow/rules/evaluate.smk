# Predict the test split with a run's final model, then score it (no TensorFlow there).
# tune.smk reuses both rules (use rule ... with:) for the guideline's iterations.


rule predict:
    input:
        manifest=rules.train.output.manifest,
        store=test_store,
    output:
        pred=temp(f"{RUNS}/pred.npy"),
        inference=f"{RUNS}/inference.json",
    log:
        f"{RUN_LOGS}/predict.log",
    benchmark:
        f"{RUN_BENCHMARKS}/predict.tsv"
    conda:
        "../../envs/train.yaml"
    resources:
        gres="gpu:1",
        cpus_per_task=cpus_per_rank,
        mem_mb_per_cpu=mem_per_cpu,
        runtime=60,
    params:
        run=input_folder("manifest"),
        store=input_folder("store"),
    shell:
        "python -m segscale.train.env python -m segscale.evaluate.predict --run {params.run:q}"
        " --store {params.store:q} --pred {output.pred:q} --inference {output.inference:q}"
        " > {log:q} 2>&1"


rule evaluate:
    input:
        pred=rules.predict.output.pred,
        inference=rules.predict.output.inference,
        manifest=rules.train.output.manifest,
        store=test_store,
    output:
        metrics=maybe_protected(f"{RUNS}/metrics.json"),
        predictions=directory(f"{RUNS}/predictions"),
    log:
        f"{RUN_LOGS}/evaluate.log",
    benchmark:
        f"{RUN_BENCHMARKS}/evaluate.tsv"
    conda:
        "../../envs/data.yaml"
    params:
        store=input_folder("store"),
    shell:
        "python -m segscale.evaluate --store {params.store:q} --pred {input.pred:q}"
        " --inference {input.inference:q} --run {input.manifest:q}"
        " --metrics {output.metrics:q} --predictions-dir {output.predictions:q} > {log:q} 2>&1"
