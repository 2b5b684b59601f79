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
