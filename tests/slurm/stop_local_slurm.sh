#!/usr/bin/env bash
# Stops the daemons that start_local_slurm.sh started (listed in /run/cacflow-slurm/started,
# by their pid files), newest first, and removes the slurm.conf / gres.conf it wrote: with
# slurm-client installed and a slurm.conf naming a controller that is down, every `scontrol`
# call (and so every Snakemake start, whose SLURM executor plugin asks it) waits ~9 s.
# The packages stay installed, so the next start takes a second.
set -euo pipefail
RUN_DIR=/run/cacflow-slurm
MARKER="# cacflow local test cluster"
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo -n"

remove_config() {
    local f
    for f in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
        if [[ -f $f ]] && grep -qF "$MARKER" "$f"; then $SUDO rm -f "$f"; fi
    done
}
trap remove_config EXIT
[[ -f $RUN_DIR/started ]] || exit 0

while read -r name pidfile; do
    [[ -f $pidfile ]] || continue
    pid=$(cat "$pidfile")
    if $SUDO kill -0 "$pid" 2>/dev/null; then
        echo "[local-slurm] stopping $name (pid $pid)" >&2
        $SUDO kill "$pid"
        for _ in $(seq 50); do
            $SUDO kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
done < <(tac "$RUN_DIR/started")
$SUDO rm -f "$RUN_DIR/started"
