# segscale: scaling studies of distributed training of segmentation CNNs.
# raw MSD NIfTI -> inspect -> split -> slice stores -> augment -> train (Horovod, N ranks)
#   -> predict + evaluate -> aggregate -> figures, tables, report
from snakemake.utils import min_version

min_version("9.19")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"


rule all:
    input:
        data_targets,
    default_target: True
    localrule: True


rule data:
    input:
        data_targets,
    localrule: True
