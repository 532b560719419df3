# All runs -> tidy tables -> figures. Local, cheap, and never a reason to retrain.


rule aggregate:
    input:
        metrics=stored_run_metrics,
    output:
        runs=report(
            "results/tables/runs.csv",
            caption="../report/runs_table.rst",
            category="Tables",
        ),
        parquet="results/tables/runs.parquet",
        summary=report(
            "results/tables/summary.csv",
            caption="../report/summary_table.rst",
            category="Tables",
        ),
        scaling=report(
            "results/tables/scaling.csv",
            caption="../report/scaling_table.rst",
            category="Tables",
        ),
        history="results/tables/history.csv",
        resources="results/tables/resources.csv",
    log:
        "results/logs/aggregate.log",
    localrule: True
    conda:
        "../../envs/plot.yaml"
    params:
        run_dirs=sweep_run_dirs,
    shell:
        "python -m segscale.report.tables --metrics {input.metrics:q} --expected-runs {params.run_dirs:q}"
        " --runs-csv {output.runs:q} --runs-parquet {output.parquet:q}"
        " --summary {output.summary:q} --scaling {output.scaling:q}"
        " --history {output.history:q} --resources {output.resources:q} > {log:q} 2>&1"


rule plots:
    input:
        runs=rules.aggregate.output.runs,
        scaling=rules.aggregate.output.scaling,
        history=rules.aggregate.output.history,
        resources=rules.aggregate.output.resources,
    output:
        training_time=report(
            "results/figures/training_time.png",
            caption="../report/training_time.rst",
            category="Scaling",
        ),
        speedup=report(
            "results/figures/speedup.png",
            caption="../report/speedup.rst",
            category="Scaling",
        ),
        efficiency=report(
            "results/figures/efficiency.png",
            caption="../report/efficiency.rst",
            category="Scaling",
        ),
        metrics=report(
            "results/figures/metrics_vs_gpus.png",
            caption="../report/metrics_vs_gpus.rst",
            category="Accuracy",
        ),
        curves=report(
            "results/figures/curves.png",
            caption="../report/curves.rst",
            category="Training curves",
        ),
        resources=report(
            "results/figures/resources.png",
            caption="../report/resources.rst",
            category="Resources",
        ),
        strategies=report(
            "results/figures/strategies.png",
            caption="../report/strategies.rst",
            category="Scaling",
        ),
        svg=multiext(
            "results/figures/",
            "training_time.svg",
            "speedup.svg",
            "efficiency.svg",
            "metrics_vs_gpus.svg",
            "curves.svg",
            "resources.svg",
            "strategies.svg",
        ),
    log:
        "results/logs/plots.log",
    localrule: True
    conda:
        "../../envs/plot.yaml"
    params:
        tables=input_folder("runs"),
        out=output_folder("speedup"),
        curve_gpus=curve_gpus,
    shell:
        "python -m segscale.report.figures --tables-dir {params.tables:q} --out-dir {params.out:q}"
        " --curve-gpus {params.curve_gpus} > {log:q} 2>&1"


rule time_to_accuracy:
    input:
        runs=rules.aggregate.output.runs,
        history=rules.aggregate.output.history,
    output:
        table=report(
            "results/tables/time_to_accuracy.csv",
            caption="../report/time_to_accuracy_table.rst",
            category="Tables",
        ),
        figure=report(
            "results/figures/time_to_accuracy.png",
            caption="../report/time_to_accuracy.rst",
            category="Scaling",
        ),
        svg="results/figures/time_to_accuracy.svg",
    log:
        "results/logs/time_to_accuracy.log",
    localrule: True
    conda:
        "../../envs/plot.yaml"
    params:
        fractions=config.get("time_to_accuracy", {}).get("fractions", [1.0, 0.95]),
        out=output_folder("figure"),
    shell:
        "python -m segscale.report.accuracy_time --runs {input.runs:q} --history {input.history:q}"
        " --fractions {params.fractions} --table {output.table:q} --out-dir {params.out:q}"
        " > {log:q} 2>&1"


rule breakdown:
    input:
        runs=rules.aggregate.output.runs,
        history=rules.aggregate.output.history,
    output:
        table="results/tables/breakdown.csv",
        figure=report(
            "results/figures/breakdown.png",
            caption="../report/breakdown.rst",
            category="Scaling",
        ),
        svg="results/figures/breakdown.svg",
    log:
        "results/logs/breakdown.log",
    localrule: True
    conda:
        "../../envs/plot.yaml"
    params:
        tables=input_folder("runs"),
        out=output_folder("figure"),
    shell:
        "python -m segscale.report.breakdown --tables-dir {params.tables:q}"
        " --table {output.table:q} --out-dir {params.out:q} > {log:q} 2>&1"
