# One scoring engine for the reference and every method: Agatston / volume / mass per
# artery and per lesion, for every batch and source.


rule score:
    input:
        images="results/{ds}/work/resampled/{batch}",
        labels="results/{ds}/work/labels/{source}/{batch}",
        native="results/{ds}/work/native/{batch}",
    output:
        scores="results/{ds}/work/scores/{source}/{batch}.parquet",
        lesions="results/{ds}/work/lesions/{source}/{batch}.parquet",
    log:
        "logs/{ds}/score/{source}/{batch}.log",
    benchmark:
        "benchmarks/{ds}/score/{source}/{batch}.tsv"
    params:
        scoring=section_json("scoring"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/imaging.yaml"
    shell:
        "cacflow score {input.images} {input.labels} --scans {input.native}/scans.parquet "
        "--method {wildcards.source} --scoring {params.scoring:q} "
        "--scores {output.scores} --lesions {output.lesions} > {log} 2>&1"
