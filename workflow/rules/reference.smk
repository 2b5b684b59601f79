# Reference standard: point annotations -> lesion label masks (+ a report per point).


rule reference:
    input:
        images="results/{ds}/work/resampled/{batch}",
        annotations=annotations,
        manifest=manifest_path,
    output:
        directory("results/{ds}/work/labels/reference/{batch}"),
    log:
        "logs/{ds}/reference/{batch}.log",
    benchmark:
        "benchmarks/{ds}/reference/{batch}.tsv"
    params:
        scoring=section_json("scoring"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/imaging.yaml"
    shell:
        "cacflow reference {input.images} {input.annotations} {output} "
        "--scoring {params.scoring:q} --manifest {input.manifest} > {log} 2>&1"
