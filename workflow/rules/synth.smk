# Generated cohorts: synthetic ones (the demo dataset and training data) and real
# backgrounds with inserted calcium; each gives DICOM + annotations + truth.


rule synth:
    wildcard_constraints:
        ds=generated("synthetic"),
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


rule insert:
    wildcard_constraints:
        ds=generated("inserted"),
    output:
        dicom=directory("data/{ds}/dicom"),
        annotations="data/{ds}/annotations.csv",
        truth="data/{ds}/truth.csv",
    log:
        "logs/{ds}/insert.log",
    benchmark:
        "benchmarks/{ds}/insert.tsv"
    params:
        args=insert_args,
        scoring=section_json("scoring"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/imaging.yaml"
    shell:
        "cacflow insert data/{wildcards.ds} {params.args} --scoring {params.scoring:q} "
        "> {log} 2>&1"
