#!/usr/bin/env bash
# Stops the daemons that start_local_slurm.sh started (listed in /run/cacflow-slurm/started,
# by their pid files), newest first; leaves the packages and /etc/slurm in place, so the
# next start takes a second.
set -euo pipefail
RUN_DIR=/run/cacflow-slurm
SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO="sudo -n"
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
