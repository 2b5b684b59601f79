# Header-only pass over a dataset's DICOM folder: the series manifest (a checkpoint, since
# the batches of the per-series stages are known only after it). Skipped when the dataset
# gives a `manifest`.


checkpoint discover:
    input:
        dicom_dir,
    output:
        "results/{ds}/manifest.parquet",
    log:
        "logs/{ds}/discover.log",
    benchmark:
        "benchmarks/{ds}/discover.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    conda:
        "../../envs/imaging.yaml"
    shell:
        "cacflow discover {input} --out {output} --workers {threads} > {log} 2>&1"
