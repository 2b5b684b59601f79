# DICOM -> one NIfTI per usable series, with geometry QC; one job per batch of series.


rule convert:
    input:
        manifest_path,
    output:
        directory("results/{ds}/work/native/{batch}"),
    log:
        "logs/{ds}/convert/{batch}.log",
    benchmark:
        "benchmarks/{ds}/convert/{batch}.tsv"
    params:
        qc=section_json("qc"),
        batch_size=config["batch_size"],
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/imaging.yaml"
    shell:
        "cacflow convert --manifest {input} --batch {wildcards.batch} "
        "--batch-size {params.batch_size} --qc {params.qc:q} --workers {threads} "
        "{output} > {log} 2>&1"
