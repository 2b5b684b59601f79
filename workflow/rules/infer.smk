# Scoring methods on the analysis volumes: label masks or per-slice predictions, never scores.


rule infer:
    input:
        images="results/{ds}/work/resampled/{batch}",
        model=model_weights,
    output:
        directory("results/{ds}/work/labels/{method}/{batch}"),
    log:
        "logs/{ds}/infer/{method}/{batch}.log",
    benchmark:
        "benchmarks/{ds}/infer/{method}/{batch}.tsv"
    params:
        scoring=section_json("scoring"),
        model=model_arg,
        settings=method_settings,
    threads: 2
    resources:
        mem_mb=6000,
        runtime=60,
        gpu=method_gpus,
    conda:
        "../../envs/torch.yaml"
    shell:
        "cacflow infer {wildcards.method} {input.images} {output} "
        "--scoring {params.scoring:q} --settings {params.settings:q} {params.model} > {log} 2>&1"
