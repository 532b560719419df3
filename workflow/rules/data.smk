# Data stage: raw MSD task -> validated report -> patient split -> slice stores.


rule demo_dataset:
    output:
        meta="results/demo/{dataset}/dataset.json",
    log:
        "results/logs/demo/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    params:
        kind=demo_kind,
        out=output_folder("meta"),
    shell:
        "python -m segscale.data.demo --kind {params.kind} --out {params.out:q} > {log:q} 2>&1"


rule inspect:
    input:
        meta=raw_dataset_json,
        volumes=listed_volumes,
    output:
        report="results/data/{dataset}/inspect.json",
    log:
        "results/logs/data/{dataset}/inspect.log",
    conda:
        "../../envs/data.yaml"
    threads: 2
    params:
        root=root_param,
        settings=dataset_params_json,
    shell:
        "python -m segscale.data.validate --root {params.root:q} --name {wildcards.dataset}"
        " --params {params.settings:q} --report {output.report:q} --threads {threads}"
        " > {log:q} 2>&1"


rule split:
    input:
        rules.inspect.output.report,
    output:
        split="results/data/{dataset}/split.json",
    log:
        "results/logs/data/{dataset}/split.log",
    conda:
        "../../envs/data.yaml"
    params:
        settings=dataset_params_json,
    shell:
        "python -m segscale.data.split --inspect {input:q} --name {wildcards.dataset}"
        " --params {params.settings:q} --out {output.split:q} > {log:q} 2>&1"


rule slice_store:
    input:
        inspect=rules.inspect.output.report,
        split=rules.split.output.split,
    output:
        multiext(
            "results/data/{dataset}/store/{split}/",
            images="images.npy",
            labels="labels.npy",
            index="index.csv",
            manifest="manifest.json",
        ),
    log:
        "results/logs/data/{dataset}/slice_{split}.log",
    benchmark:
        "results/benchmarks/data/{dataset}/slice_{split}.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 2
    params:
        settings=dataset_params_json,
        out=output_folder("manifest"),
    shell:
        "python -m segscale.data.build --name {wildcards.dataset} --params {params.settings:q}"
        " --inspect {input.inspect:q} --split-file {input.split:q} --split {wildcards.split}"
        " --out {params.out:q} --threads {threads} > {log:q} 2>&1"


rule augment:
    input:
        store=train_store_files,
    output:
        multiext(
            "results/data/{dataset}/store/train-augmented/",
            images="images.npy",
            labels="labels.npy",
            index="index.csv",
            manifest="manifest.json",
        ),
    log:
        "results/logs/data/{dataset}/augment.log",
    benchmark:
        "results/benchmarks/data/{dataset}/augment.tsv"
    conda:
        "../../envs/data.yaml"
    threads: 2
    params:
        settings=dataset_params_json,
        store=input_folder("store"),
        out=output_folder("manifest"),
    shell:
        "python -m segscale.data.augment --name {wildcards.dataset} --params {params.settings:q}"
        " --store {params.store:q} --out {params.out:q} --threads {threads} > {log:q} 2>&1"
