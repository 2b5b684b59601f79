# Synthetic cohorts (the demo dataset and training data): DICOM + annotations + truth.


rule synth:
    output:
        dicom=directory("data/{ds}/dicom"),
        annotations="data/{ds}/annotations.csv",
        truth="data/{ds}/truth.csv",
    log:
        "logs/{ds}/synth.log",
    benchmark:
        "benchmarks/{ds}/synth.tsv"
    params:
        args=synth_args,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/imaging.yaml"
    shell:
        "cacflow synth data/{wildcards.ds} {params.args} > {log} 2>&1"
