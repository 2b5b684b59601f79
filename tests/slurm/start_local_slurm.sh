#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests: installs Debian's slurmctld, slurmd,
# slurm-client and munge when missing, writes /etc/slurm/slurm.conf (the default path: the
# SLURM executor's job steps drop SLURM_CONF) and /etc/slurm/gres.conf with one fake GPU,
# starts munged, slurmctld and slurmd (node "localhost"), and waits until the node is idle.
#
# Needs root (or passwordless sudo). Refuses to touch a slurm.conf it did not write.
# Idempotent: a cluster it started before is reused. Stop it with stop_local_slurm.sh.
set -euo pipefail

MARKER="# cacflow local test cluster"
CONF_DIR=/etc/slurm
STATE_DIR=/var/spool/slurmctld
SPOOL_DIR=/var/spool/slurmd
LOG_DIR=/var/log/slurm
RUN_DIR=/run/cacflow-slurm
PACKAGES=(slurmctld slurmd slurm-client munge)
NODE_WAIT_S=60

log() { echo "[local-slurm] $*" >&2; }

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    if sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        log "needs root or passwordless sudo"
        exit 2
    fi
fi

install_packages() {
    local missing=()
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sbatch >/dev/null || missing+=(slurm-client)
    command -v munged >/dev/null || missing+=(munge)
    if ((${#missing[@]})); then
        log "installing ${PACKAGES[*]}"
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        # policy-rc.d may forbid starting services in containers; we start them ourselves.
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "${PACKAGES[@]}" >/dev/null
    fi
}

write_config() {
    local conf=$CONF_DIR/slurm.conf
    if [[ -f $conf ]] && ! grep -qF "$MARKER" "$conf"; then
        log "$conf exists and was not written by this script; not touching it"
        exit 2
    fi
    local cpus mem
    cpus=$(nproc)
    # Leave 1 GiB to the system; RealMemory must not exceed what slurmd detects.
    mem=$(($(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 1024))
    $SUDO mkdir -p "$CONF_DIR" "$STATE_DIR" "$SPOOL_DIR" "$LOG_DIR" "$RUN_DIR"
    $SUDO tee "$conf" >/dev/null <<EOF
$MARKER (tests/slurm/start_local_slurm.sh); safe to delete.
ClusterName=cacflow
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
GresTypes=gpu
ReturnToService=2
StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Finished jobs stay visible to squeue this long (the executor's status queries use it).
MinJobAge=600
SchedulerParameters=sched_interval=2
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=localhost NodeHostname=localhost CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    # One fake GPU: /dev/null stands in for the device file, so --gpus=1 / --gres=gpu:1
    # jobs are scheduled and accounted like on a GPU node (nothing runs on it).
    $SUDO tee "$CONF_DIR/gres.conf" >/dev/null <<EOF
$MARKER
NodeName=localhost Name=gpu File=/dev/null
EOF
}

running() { [[ -f $1 ]] && $SUDO kill -0 "$(cat "$1")" 2>/dev/null; }

started() {  # remember what this script started: stop_local_slurm.sh stops only those
    echo "$1" | $SUDO tee -a "$RUN_DIR/started" >/dev/null
}

start_daemons() {
    $SUDO mkdir -p /run/munge && $SUDO chown munge:munge /run/munge
    if ! running /run/munge/munged.pid; then
        log "starting munged"
        $SUDO runuser -u munge -- /usr/sbin/munged
        started "munged /run/munge/munged.pid"
    fi
    if ! running "$RUN_DIR/slurmctld.pid"; then
        log "starting slurmctld"
        $SUDO /usr/sbin/slurmctld -c  # -c: fresh state (no jobs from an earlier run)
        started "slurmctld $RUN_DIR/slurmctld.pid"
    fi
    if ! running "$RUN_DIR/slurmd.pid"; then
        log "starting slurmd"
        $SUDO /usr/sbin/slurmd -N localhost
        started "slurmd $RUN_DIR/slurmd.pid"
    fi
}

wait_for_node() {
    local state=""
    for _ in $(seq "$NODE_WAIT_S"); do
        state=$(sinfo -h -n localhost -o %T 2>/dev/null || true)
        if [[ $state == idle* || $state == mixed* || $state == allocated* ]]; then
            log "node localhost is $state"
            return 0
        fi
        if [[ $state == down* || $state == drain* ]]; then
            $SUDO scontrol update NodeName=localhost State=RESUME 2>/dev/null || true
        fi
        sleep 1
    done
    log "node not ready after ${NODE_WAIT_S}s (state: ${state:-none}); logs in $LOG_DIR"
    $SUDO tail -n 20 "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" >&2 || true
    return 1
}

install_packages
write_config
start_daemons
wait_for_node
