# Training of the learned methods, on demand only (never part of `rule all`):
#   .venv/bin/snakemake --cores 2 train_direct
# The training dataset (config `direct.train_dataset`) goes through the usual stages
# (synth or DICOM -> convert -> resample -> reference); its analysis volumes and reference
# label masks train the model. The weights land in results/models/, never in resources/:
# shipping a model is a copy by hand (resources/models/MODEL_CARD.md).
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
        "--device auto --threads {threads} > {log} 2>&1"
