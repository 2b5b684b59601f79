# Slab averaging to the analysis geometry (default 3 mm slices every 1.5 mm), and whether
# each analysis image can be scored (scorable.parquet: noise, contrast, heart in the FOV).


rule resample:
    input:
        "results/{ds}/work/native/{batch}",
    output:
        directory("results/{ds}/work/resampled/{batch}"),
    log:
        "logs/{ds}/resample/{batch}.log",
    benchmark:
        "benchmarks/{ds}/resample/{batch}.tsv"
    params:
        geometry=resample_args,
        scorable=section_json("scorable"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/imaging.yaml"
    shell:
        "cacflow resample {input} {output} {params.geometry} "
        "--scorable {params.scorable:q} > {log} 2>&1"
