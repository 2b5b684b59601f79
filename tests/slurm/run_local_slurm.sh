#!/usr/bin/env bash
# End-to-end check of the SLURM profile on a real (one-node, local) SLURM cluster.
#
#   tests/slurm/run_local_slurm.sh [WORKDIR]
#
# 1. starts the local cluster (start_local_slurm.sh: installs slurm + munge when missing);
# 2. checks that the fake GPU is schedulable (an srun --gpus=1 job step);
# 3. makes a tiny synthetic cohort (4 scans, 2 batches) and runs the workflow on it twice from
#    the same config: locally (profiles/default, in the background) and through
#    SLURM (workflow/profiles/slurm with its sizes fitted to the node by fit_profile.py);
# 4. checks that every results/tiny/*.parquet table is equal between the two runs (the
#    manifest aside: it holds absolute file paths), that the SLURM run submitted the
#    expected number of grouped jobs and that all of them COMPLETED.
# Writes WORKDIR/summary.json (timings and job counts). Exit 0 only if everything holds.
# Needs root or passwordless sudo (apt-get, /etc/slurm). Env: PYTHON (default .venv's),
# CACFLOW_SLURM_KEEP=1 keeps the cluster running afterwards.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
BIN=$(dirname "$PYTHON")
WORK=${1:-$(mktemp -d -t cacflow-slurm-XXXXXX)}
DATASET=tiny
# SLURM jobs expected: discover, one `series` group (convert, resample, reference of both
# batches), one `infer-hu-threshold` group, one `scoring` group (4 score jobs), tables, one
# `dataset` group (stats), report and seg (the DICOM SEG export, `report.seg` on by default;
# both ungrouped: see the profile); 17 jobs ungrouped. With the shipped weights of the
# `direct` method present, it runs too: one more group (infer-direct, one GPU).
EXPECTED_SLURM_JOBS=8
METHODS="[hu-threshold]"
if [[ -f $REPO/resources/models/direct.pt ]]; then
    EXPECTED_SLURM_JOBS=9
    METHODS="[hu-threshold, direct]"
fi

log() { echo "[slurm-e2e] $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}'; }

# One check at a time on this machine: a second invocation waits here.
LOCK=${TMPDIR:-/tmp}/cacflow-slurm-e2e.lock
exec 9>"$LOCK"
if ! flock -n 9; then
    log "another run holds $LOCK; waiting"
    flock 9
fi

t_start=$(now)
was_running=false
if scontrol ping 2>/dev/null | grep -q UP; then was_running=true; fi
"$HERE/start_local_slurm.sh"
t_cluster=$(since "$t_start")
stop_cluster() {  # only a cluster this run started, and not with CACFLOW_SLURM_KEEP=1
    if [[ $was_running == false && ${CACFLOW_SLURM_KEEP:-0} != 1 ]]; then
        "$HERE/stop_local_slurm.sh" || true
    fi
}
trap stop_cluster EXIT

log "GPU GRES check"
gpu_out=$(srun -n1 --gpus=1 --time=1 bash -c 'echo "gpus=$CUDA_VISIBLE_DEVICES"')
[[ $gpu_out == gpus=* ]] || { log "GPU job failed: $gpu_out"; exit 1; }

mkdir -p "$WORK"
write_config() {  # $1: run folder
    mkdir -p "$1"
    cp -r "$REPO/config" "$1/config"
    if [[ -d $REPO/resources ]]; then cp -r "$REPO/resources" "$1/resources"; fi
    cat >"$1/$DATASET.yaml" <<EOF
datasets:
  $DATASET:
    synthetic: {n_scans: 4, seed: 3, matrix: 96, thicknesses_mm: [3.0]}
run: [$DATASET]
methods: $METHODS
batch_size: 2
stats: {n_boot: 20}
EOF
}

snakemake() {  # $1: run folder, rest: arguments (targets first)
    local dir=$1
    shift
    (cd "$dir" && PATH="$BIN:$PATH" "$BIN/snakemake" "$@" --snakefile "$REPO/Snakefile" \
        --configfile "$DATASET.yaml")
}

# The synthetic cohort is made once, locally, and copied: both runs read the same DICOM files
# (synth is not a cluster stage; it makes the demo's input).
log "synthetic cohort in $WORK/local/data"
write_config "$WORK/local"
write_config "$WORK/slurm"
t0_local=$(now)
snakemake "$WORK/local" "data/$DATASET/dicom" --cores 1 >"$WORK/synth.log" 2>&1 ||
    { tail -n 30 "$WORK/synth.log"; exit 1; }
cp -a "$WORK/local/data" "$WORK/slurm/data"

# The local run goes to the background while the SLURM jobs queue: same code, same inputs.
log "local run in $WORK/local (background)"
(
    snakemake "$WORK/local" --workflow-profile "$REPO/profiles/default" --cores 2 \
        >"$WORK/local.log" 2>&1
    since "$t0_local" >"$WORK/local.seconds"
) &
local_pid=$!

log "SLURM run in $WORK/slurm"
# The shipped profile with its sizes fitted to this node (cores, mem_mb; nothing else).
node_cpus=$(scontrol show node localhost | sed -n 's/.*CPUTot=\([0-9]*\).*/\1/p')
node_mem=$(scontrol show node localhost | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
"$PYTHON" "$HERE/fit_profile.py" "$REPO/workflow/profiles/slurm" "$WORK/profile" \
    --cores "$node_cpus" --mem-mb "$node_mem"
new_jobs() {  # "id state" of every SLURM job of this Snakemake run (named by its run ID)
    local run_id
    run_id=$(sed -n 's/^SLURM run ID: \(.*\)$/\1/p' "$WORK/slurm.log" | head -n 1)
    [[ -n $run_id ]] || return 0
    squeue -h --states=all --name "$run_id" -o '%i %T'
}
status=0
t0=$(now)
# Test-cluster overrides: squeue instead of sacct (no accounting database here) and fast
# status polling for short jobs.
snakemake "$WORK/slurm" --workflow-profile "$WORK/profile" \
    --slurm-status-command squeue \
    --slurm-init-seconds-before-status-checks 2 \
    --max-status-checks-per-second 2 \
    --latency-wait 10 \
    >"$WORK/slurm.log" 2>&1 || status=$?
t_slurm=$(since "$t0")
local_status=0
wait "$local_pid" || local_status=$?
if [[ $status != 0 || $local_status != 0 ]]; then
    [[ $status == 0 ]] || { tail -n 80 "$WORK/slurm.log"; log "SLURM run failed"; }
    [[ $local_status == 0 ]] || { tail -n 50 "$WORK/local.log"; log "local run failed"; }
    exit 1
fi
t_local=$(cat "$WORK/local.seconds")
slurm_jobs=$(new_jobs | wc -l)
not_completed=$(new_jobs | awk '$2 != "COMPLETED"' | wc -l)
# Which jobs asked SLURM for a GPU: only inference groups of GPU methods may.
gpu_jobs=0
wrong_gpu=""
for id in $(new_jobs | awk '{print $1}'); do
    info=$(scontrol show job "$id")
    if grep -Eq 'gpu[:=][1-9]' <<<"$info"; then
        gpu_jobs=$((gpu_jobs + 1))
        comment=$(sed -n 's/.*Comment=\([^ ]*\).*/\1/p' <<<"$info")
        [[ $comment == rule_infer-direct* ]] || wrong_gpu+=" $id:$comment"
    fi
done
workflow_jobs=$(sed -n 's/^\([0-9]*\) of \1 steps (100%) done$/\1/p' "$WORK/slurm.log" | tail -n 1)

log "comparing tables"
tables_equal=true
"$PYTHON" "$HERE/compare_tables.py" "$WORK/local/results/$DATASET" \
    "$WORK/slurm/results/$DATASET" --exclude manifest >"$WORK/compare.txt" ||
    { tables_equal=false; status=1; }
cat "$WORK/compare.txt"

cat >"$WORK/summary.json" <<EOF
{"cluster_start_s": $t_cluster, "local_run_s": $t_local, "slurm_run_s": $t_slurm,
 "slurm_jobs": $slurm_jobs, "workflow_jobs": ${workflow_jobs:-0},
 "expected_slurm_jobs": $EXPECTED_SLURM_JOBS, "not_completed": $not_completed,
 "gpu_jobs": $gpu_jobs, "methods": "$METHODS",
 "tables_equal": $tables_equal}
EOF
cat "$WORK/summary.json"

if [[ $slurm_jobs -ne $EXPECTED_SLURM_JOBS ]]; then
    log "expected $EXPECTED_SLURM_JOBS SLURM jobs (grouped), got $slurm_jobs"
    status=1
fi
if [[ -n $wrong_gpu ]]; then
    log "jobs that requested a GPU without running a GPU method:$wrong_gpu"
    status=1
fi
if [[ $METHODS == *direct* && $gpu_jobs -eq 0 ]]; then
    log "the direct method ran, but no SLURM job requested a GPU"
    status=1
fi
if [[ $not_completed -ne 0 ]]; then
    log "SLURM jobs not COMPLETED:"
    new_jobs | awk '$2 != "COMPLETED"' >&2
    status=1
fi
log "done in $(since "$t_start") s (status $status)"
exit "$status"
