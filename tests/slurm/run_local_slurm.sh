#!/usr/bin/env bash
# End-to-end check of the SLURM profile on a real (one-node, local) SLURM cluster.
#
#   tests/slurm/run_local_slurm.sh [WORKDIR]
#
# 1. starts the local cluster (start_local_slurm.sh: installs slurm + munge when missing);
# 2. checks that the fake GPU is schedulable (an sbatch --gpus=1 job);
# 3. runs the workflow on a tiny synthetic cohort twice from the same config: locally
#    (workflow/profiles/default) and through SLURM (workflow/profiles/slurm);
# 4. checks that every results/tiny/*.parquet table is equal between the two runs and that
#    the SLURM run used grouped jobs (fewer SLURM jobs than workflow jobs).
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
# SLURM jobs expected: synth, discover, one `series` group (both batches), one infer group,
# one `scoring` group (4 score jobs), tables, stats, report.
EXPECTED_SLURM_JOBS=8

log() { echo "[slurm-e2e] $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}'; }

t_start=$(now)
"$HERE/start_local_slurm.sh"
t_cluster=$(since "$t_start")
stop_cluster() {
    if [[ ${CACFLOW_SLURM_KEEP:-0} != 1 ]]; then
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
    cat >"$1/$DATASET.yaml" <<EOF
datasets:
  $DATASET:
    synthetic: {n_scans: 4, seed: 3, matrix: 96, thicknesses_mm: [3.0]}
run: [$DATASET]
batch_size: 2
stats: {n_boot: 20}
EOF
}

snakemake() {  # $1: run folder, rest: arguments
    local dir=$1
    shift
    (cd "$dir" && PATH="$BIN:$PATH" "$BIN/snakemake" --snakefile "$REPO/Snakefile" \
        --configfile "$DATASET.yaml" "$@")
}

log "local run in $WORK/local"
write_config "$WORK/local"
t0=$(now)
snakemake "$WORK/local" --workflow-profile "$REPO/workflow/profiles/default" --cores 2 \
    >"$WORK/local.log" 2>&1 || { tail -n 50 "$WORK/local.log"; exit 1; }
t_local=$(since "$t0")

log "SLURM run in $WORK/slurm"
write_config "$WORK/slurm"
jobs_before=$(squeue -h --states=all -o %i | wc -l)
t0=$(now)
# CI overrides of the profile: a 2-CPU node (group width), squeue instead of sacct (no
# accounting database here) and fast status polling for short jobs.
snakemake "$WORK/slurm" --workflow-profile "$REPO/workflow/profiles/slurm" \
    --cores "$(nproc)" \
    --slurm-status-command squeue \
    --slurm-init-seconds-before-status-checks 1 \
    --max-status-checks-per-second 2 \
    --latency-wait 10 \
    >"$WORK/slurm.log" 2>&1 || { tail -n 80 "$WORK/slurm.log"; exit 1; }
t_slurm=$(since "$t0")
slurm_jobs=$(($(squeue -h --states=all -o %i | wc -l) - jobs_before))
workflow_jobs=$(awk '/^total[[:space:]]+[0-9]+/ {n = $2} END {print n + 0}' "$WORK/slurm.log")

log "comparing tables"
"$PYTHON" "$HERE/compare_tables.py" "$WORK/local/results/$DATASET" \
    "$WORK/slurm/results/$DATASET" | tee "$WORK/compare.txt"
status=${PIPESTATUS[0]}

failed_states=$(squeue -h --states=all -o '%i %T' | awk '$2 != "COMPLETED"' | wc -l)
cat >"$WORK/summary.json" <<EOF
{"cluster_start_s": $t_cluster, "local_run_s": $t_local,
 "slurm_run_s": $t_slurm, "slurm_jobs": $slurm_jobs, "workflow_jobs": $workflow_jobs,
 "expected_slurm_jobs": $EXPECTED_SLURM_JOBS, "not_completed": $failed_states,
 "tables_equal": $([[ $status == 0 ]] && echo true || echo false)}
EOF
cat "$WORK/summary.json"

if [[ $slurm_jobs -ne $EXPECTED_SLURM_JOBS ]]; then
    log "expected $EXPECTED_SLURM_JOBS SLURM jobs (grouped), got $slurm_jobs"
    status=1
fi
if [[ $failed_states -ne 0 ]]; then
    log "SLURM jobs not COMPLETED:"
    squeue -h --states=all -o '%i %T %j' | awk '$2 != "COMPLETED"' >&2
    status=1
fi
log "done in $(since "$t_start") s (status $status)"
exit "$status"
