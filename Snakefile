# segscale: scaling studies of distributed training of segmentation CNNs.
# raw MSD NIfTI -> inspect -> split -> slice stores -> augment -> train (Horovod, N ranks)
#   -> predict + evaluate -> aggregate -> figures, tables, report
from snakemake.utils import min_version

min_version("9.19")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/tune.smk"
include: "workflow/rules/scaling.smk"
include: "workflow/rules/parallelism.smk"
include: "workflow/rules/slurm_guard.smk"


rule all:
    default_target: True
    input:
        data_targets,
        rules.plots.output,
        rules.time_to_accuracy.output,
        rules.breakdown.output,
    localrule: True


rule figures:
    input:
        rules.plots.output,
        rules.time_to_accuracy.output,
        rules.breakdown.output,
    localrule: True


rule runs:
    input:
        all_run_metrics,
    localrule: True


rule data:
    input:
        data_targets,
    localrule: True


rule tune:
    input:
        tune_targets,
    localrule: True


rule guideline:
    input:
        rules.guideline_report.output,
    localrule: True


rule parallelism:
    input:
        rules.parallelism_table.output,
    localrule: True


rule predict_scaling:
    input:
        rules.predicted_scaling.output,
    localrule: True
