#!/usr/bin/env bash
# Stop the local Slurm cluster started by slurm-up.sh (test infrastructure, see README.md).
#
# Only the daemons whose PIDs slurm-up.sh recorded in $SEGSCALE_SLURM_DIR/run are signalled, and
# only if the PID still belongs to a process of the expected name (a recycled PID is left
# alone).  Order is the reverse of start-up: slurmd's, slurmctld, slurmdbd, mariadbd, munged.
# State (accounting DB, job state, logs) stays in the directory, so a later slurm-up.sh resumes
# with the same job history.  Idempotent: nothing running means nothing to do.
#
# Usage: scripts/local-cluster/slurm-down.sh [--purge]   (--purge also deletes $SEGSCALE_SLURM_DIR)
set -euo pipefail

DIR="${SEGSCALE_SLURM_DIR:-/tmp/segscale-slurm}"
RUN="$DIR/run"
WAIT_S="${SEGSCALE_SLURM_STOP_TIMEOUT:-30}"
# Any version of slurm-up.sh (also from before the move out of scripts/) writes this tag.
MARKER_TAG="# segscale-local-slurm:"

PURGE=0
if [[ "${1:-}" == "--purge" ]]; then
    PURGE=1
fi

log() {
    printf '[slurm-down] %s\n' "$*" >&2
}

# shellcheck source=scripts/local-cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ ! -d "$RUN" ]]; then
    log "nothing to stop ($RUN does not exist)"
else
    # Cancel this cluster's jobs first: slurmstepd and job processes outlive a stopped slurmd
    # and would keep running (and burning the shared CPUs) with nobody to account for them.
    if live_pid "$RUN/slurmctld.pid" slurmctld >/dev/null && [[ -f "$DIR/etc/slurm.conf" ]]; then
        export SLURM_CONF="$DIR/etc/slurm.conf"
        mapfile -t jobs < <(timeout 20 squeue -h -o '%i' 2>/dev/null || true)
        if ((${#jobs[@]} > 0)); then
            log "cancelling ${#jobs[@]} job(s)"
            timeout 20 scancel "${jobs[@]}" || true
            deadline=$((SECONDS + WAIT_S))
            while [[ -n "$(timeout 20 squeue -h -o '%i' 2>/dev/null || true)" ]] \
                && ((SECONDS < deadline)); do
                sleep 0.5
            done
        fi
    fi
    shopt -s nullglob
    for pidfile in "$RUN"/slurmd-*.pid; do
        stop "$pidfile" slurmd
    done
    shopt -u nullglob
    stop "$RUN/slurmctld.pid" slurmctld
    stop "$RUN/slurmdbd.pid" slurmdbd
    stop "$RUN/mariadbd.pid" mariadbd
    stop "$RUN/munged.pid" munged
fi

# /etc/slurm/slurm.conf written by slurm-up.sh for this directory would point client tools at a
# dead cluster; remove it only if it is ours and refers to this DIR.
if [[ -f /etc/slurm/slurm.conf ]] && grep -qF "$MARKER_TAG" /etc/slurm/slurm.conf \
    && grep -qF "StateSaveLocation=$DIR/state" /etc/slurm/slurm.conf; then
    rm -f /etc/slurm/slurm.conf
fi

if [[ "$PURGE" -eq 1 && -d "$DIR" ]]; then
    # Refuse to purge a directory slurm-up.sh did not create.
    if [[ -f "$DIR/env.sh" ]] && grep -qF "$MARKER_TAG" "$DIR/env.sh"; then
        log "removing $DIR"
        rm -rf -- "$DIR"
    else
        log "not purging $DIR: no slurm-up.sh marker in $DIR/env.sh"
    fi
fi
log "done"
