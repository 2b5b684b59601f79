# Training of the learned methods, on demand only (never part of `rule all`):
#   .venv/bin/snakemake --cores 2 train_direct
# The training datasets (config `direct.train_datasets`, else `direct.train_dataset`) go
# through the usual stages (synth, insert or DICOM -> convert -> resample -> reference);
# their analysis volumes and reference label masks train the model (a share of the scans
# is held out for early stopping). On a SLURM cluster add
# `--workflow-profile workflow/profiles/slurm` (the rule asks for one GPU; `--device auto`
# uses it). The weights land in results/models/, never in resources/: shipping a model is
# a copy by hand (resources/models/MODEL_CARD.md).
rule train_direct:
    input:
        images=training_inputs("results/{ds}/work/resampled/{batch}"),
        labels=training_inputs("results/{ds}/work/labels/reference/{batch}"),
    output:
        model="results/models/direct.pt",
        checksum="results/models/direct.pt.sha256",
        summary="results/models/direct.json",
    log:
        "logs/train/direct.log",
    benchmark:
        "benchmarks/train/direct.tsv"
    params:
        epochs=DIRECT["epochs"],
        seed=DIRECT["seed"],
        reg_iterations=DIRECT["reg_iterations"],
        validation=DIRECT["validation_fraction"],
        patience=DIRECT["patience"],
        scoring=json.dumps(config.get("scoring") or {}, sort_keys=True),
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=1,
    conda:
        "../../envs/torch.yaml"
    shell:
        "cacflow train-direct --images {input.images} --labels {input.labels} "
        "--out {output.model} --epochs {params.epochs} --seed {params.seed} "
        "--reg-iterations {params.reg_iterations} --scoring {params.scoring:q} "
        "--validation-fraction {params.validation} --patience {params.patience} "
        "--device auto --threads {threads} > {log} 2>&1"


# Training of the `segment` method (3D U-Net ensemble), on demand only:
#   .venv/bin/snakemake --cores 2 train_segment
# The training datasets (config `segment.train_datasets`) go through the usual stages; their
# analysis volumes and reference label masks train `segment.ensemble` U-Nets, each with its
# own validation split and seed (early stopping, triage operating point). On a SLURM
# cluster add `--workflow-profile workflow/profiles/slurm` (one GPU). The weights land in
# results/models/; shipping is a copy by hand (resources/models/MODEL_CARD_segment.md).
rule train_segment:
    input:
        images=training_inputs("results/{ds}/work/resampled/{batch}", SEGMENT["train_datasets"]),
        labels=training_inputs(
            "results/{ds}/work/labels/reference/{batch}", SEGMENT["train_datasets"]
        ),
    output:
        model="results/models/segment.pt",
        checksum="results/models/segment.pt.sha256",
        summary="results/models/segment.json",
    log:
        "logs/train/segment.log",
    benchmark:
        "benchmarks/train/segment.tsv"
    params:
        ensemble=SEGMENT["ensemble"],
        epochs=SEGMENT["epochs"],
        iterations=SEGMENT["iterations"],
        batch=SEGMENT["batch"],
        patience=SEGMENT["patience"],
        validation=SEGMENT["validation_fraction"],
        seed=SEGMENT["seed"],
        grid=f"--spacing-mm {SEGMENT['spacing_mm']} --crop {SEGMENT['crop_voxels']} "
        f"--patch {SEGMENT['patch_voxels']}",
        scoring=json.dumps(config.get("scoring") or {}, sort_keys=True),
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=1,
    conda:
        "../../envs/torch.yaml"
    shell:
        "cacflow train-segment --images {input.images} --labels {input.labels} "
        "--out {output.model} --ensemble {params.ensemble} --epochs {params.epochs} "
        "--iterations {params.iterations} --batch {params.batch} "
        "--patience {params.patience} --validation-fraction {params.validation} "
        "--seed {params.seed} {params.grid} --scoring {params.scoring:q} "
        "--device auto --threads {threads} > {log} 2>&1"
