# Validation, the sweep table and the input/param helpers the rules use. No rules here.
import itertools
import json
from pathlib import Path

import pandas as pd
from snakemake.utils import validate

validate(config, "../schemas/config.schema.yaml")

DATASETS = config["datasets"]
SPLITS = ("train", "val", "test")


wildcard_constraints:
    dataset="|".join(DATASETS),
    split="|".join(SPLITS),


def dataset_section(name):
    """The dataset's validated config section."""
    return DATASETS[name]


def dataset_root(name):
    """Where the raw MSD task lives: the configured root, or the generated demo folder."""
    section = dataset_section(name)
    if "demo" in section:
        return f"results/demo/{name}"
    return section["root"]


def raw_dataset_json(wildcards):
    """dataset.json of the raw task; for demo datasets this makes the generator run."""
    if "demo" in dataset_section(wildcards.dataset):
        return rules.demo_dataset.output.meta.format(dataset=wildcards.dataset)
    return f"{dataset_root(wildcards.dataset)}/dataset.json"


def demo_kind(wildcards):
    """The synthetic task kind (brats or heart) of a demo dataset."""
    return dataset_section(wildcards.dataset)["demo"]


def root_param(wildcards):
    return dataset_root(wildcards.dataset)


def dataset_params_json(wildcards):
    """The dataset's section, root resolved, as JSON for the segscale CLIs."""
    section = dict(dataset_section(wildcards.dataset), root=dataset_root(wildcards.dataset))
    return json.dumps(section, sort_keys=True)


def output_dir(wildcards, output):
    """The folder holding a rule's first output file (store and demo writers need it)."""
    return str(Path(output[0]).parent)


def train_store_files(wildcards):
    """The un-augmented training store of the dataset."""
    return expand(rules.slice_store.output, dataset=wildcards.dataset, split="train")


def store_dir(wildcards, input):
    """The store folder an input file list points into."""
    return str(Path(input[0]).parent)


def data_targets(wildcards):
    """Every slice store of every configured dataset (the data stage alone)."""
    names = list(DATASETS)
    return expand(rules.slice_store.output, dataset=names, split=SPLITS) + expand(
        rules.augment.output, dataset=names
    )
