# The GreScale guideline loop (thesis 6.3.3, fig. 6.3; docs/guideline.md), per (dataset,
# arch, GPU count n): start plan -> iteration i = train (grescale) + predict + evaluate
# -> tune_step checkpoint writing iter{i}/decision.json (next hparams, or done) -> i + 1.
# The iteration table is the target; its input walks the decisions, so restarts resume.
# Helpers (tune_grid, tune_plan, tune_final_decision, ...) are in common.smk.


rule tune_start:
    output:
        plan=f"{TUNE_DIR}/start.json",
    log:
        f"{TUNE_LOGS}/start.log",
    localrule: True
    conda:
        "../../envs/data.yaml"
    params:
        hparams=hparams_json,
        guideline=guideline_settings_json,
    shell:
        "python -m segscale.tune.step --start --hparams {params.hparams:q}"
        " --gpus {wildcards.n} --config {params.guideline:q} --out {output.plan:q} > {log:q} 2>&1"


use rule train as tune_train with:
    input:
        train=training_store,
        val=validation_store,
        plan=tune_plan,
    output:
        history=f"{TUNE_ITER}/history.csv",
        manifest=f"{TUNE_ITER}/run.json",
    log:
        f"{TUNE_LOGS}/iter{{i}}/train.log",
    benchmark:
        f"{TUNE_BENCHMARKS}/iter{{i}}/train.tsv"
    params:
        launch=launch_prefix,
        hparams=plan_hparams,
        strategy=study.DEFAULT_STRATEGY,  # the guideline tunes Horovod runs
        policy=study.TUNED_POLICY,
        seed=plan_seed,
        train=input_folder("train"),
        val=input_folder("val"),
        out=output_folder("manifest"),


use rule predict as tune_predict with:
    input:
        manifest=rules.tune_train.output.manifest,
        store=test_store,
    output:
        pred=temp(f"{TUNE_ITER}/pred.npy"),
        inference=f"{TUNE_ITER}/inference.json",
    log:
        f"{TUNE_LOGS}/iter{{i}}/predict.log",
    benchmark:
        f"{TUNE_BENCHMARKS}/iter{{i}}/predict.tsv"


use rule evaluate as tune_evaluate with:
    input:
        pred=rules.tune_predict.output.pred,
        inference=rules.tune_predict.output.inference,
        manifest=rules.tune_train.output.manifest,
        store=test_store,
    output:
        metrics=f"{TUNE_ITER}/metrics.json",
        predictions=directory(f"{TUNE_ITER}/predictions"),
    log:
        f"{TUNE_LOGS}/iter{{i}}/evaluate.log",
    benchmark:
        f"{TUNE_BENCHMARKS}/iter{{i}}/evaluate.tsv"


checkpoint tune_step:
    input:
        metrics=rules.tune_evaluate.output.metrics,
        baseline=tune_baseline,
        plan=tune_plan,
    output:
        decision=f"{TUNE_DIR}/iter{{i}}/decision.json",
    log:
        f"{TUNE_LOGS}/iter{{i}}/step.log",
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
        table=f"{TUNE_DIR}/iterations.csv",
    log:
        f"{TUNE_LOGS}/table.log",
    localrule: True
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m segscale.tune.step --table {input.decision:q} --out {output.table:q}"
        " > {log:q} 2>&1"


rule guideline_report:
    input:
        iterations=tune_targets,
        runs=rules.aggregate.output.runs,
    output:
        iterations=report(
            "results/tables/guideline_iterations.csv",
            caption="../report/guideline_iterations.rst",
            category="Guideline",
        ),
        tuned=report(
            "results/tables/guideline_tuned.csv",
            caption="../report/guideline_iterations.rst",
            category="Guideline",
        ),
        figure=report(
            "results/figures/guideline.png",
            caption="../report/guideline.rst",
            category="Guideline",
        ),
        svg="results/figures/guideline.svg",
    log:
        "results/logs/guideline_report.log",
    localrule: True
    conda:
        "../../envs/plot.yaml"
    shell:
        "python -m segscale.report.guideline --iterations {input.iterations:q}"
        " --runs {input.runs:q} --iterations-out {output.iterations:q}"
        " --tuned-out {output.tuned:q} --figure {output.figure:q} > {log:q} 2>&1"
