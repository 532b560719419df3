#!/usr/bin/env bash
# Stop the local OAR cluster started by oar-up.sh (test infrastructure, see README.md).
#
# Only the daemons whose PIDs oar-up.sh recorded in $SEGSCALE_OAR_DIR/run are signalled, and only
# if the PID still belongs to a process of the expected name. Jobs still queued or running are
# deleted first (oardel, as the submitting user). Order: Almighty, the nodes' sshd, PostgreSQL.
# The database stays in the directory, so a later oar-up.sh resumes with the same job history.
#
# Usage: scripts/local-cluster/oar-down.sh [--purge]
#   --purge also deletes $SEGSCALE_OAR_DIR, puts the package's /etc/oar/oar.conf back and takes
#   back the traverse-only ACL entries oar-up.sh granted (the submitting user is kept).
set -euo pipefail

DIR="${SEGSCALE_OAR_DIR:-/tmp/segscale-oar}"
OAR_USER="${SEGSCALE_OAR_USER:-segscale-oar}"
RUN="$DIR/run"
WAIT_S="${SEGSCALE_OAR_STOP_TIMEOUT:-30}"
MARKER_TAG="# segscale-local-oar:"
CONF=/etc/oar/oar.conf
PURGE=0
[[ "${1:-}" == "--purge" ]] && PURGE=1

log() { printf '[oar-down] %s\n' "$*" >&2; }

# shellcheck source=scripts/local-cluster/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export PATH="$PATH:/usr/sbin:/sbin"

if [[ ! -d "$RUN" ]]; then
    log "nothing to stop ($RUN does not exist)"
else
    if live_pid "$RUN/almighty.pid" Almighty >/dev/null && id "$OAR_USER" >/dev/null 2>&1; then
        # The submitting user's unfinished jobs: their processes would outlive the server.
        mapfile -t jobs < <(timeout 20 runuser -u "$OAR_USER" -- oarstat -u "$OAR_USER" 2>/dev/null \
            | awk '$1 ~ /^[0-9]+$/ {print $1}' || true)
        if ((${#jobs[@]} > 0)); then
            log "deleting ${#jobs[@]} job(s)"
            timeout 30 runuser -u "$OAR_USER" -- oardel "${jobs[@]}" >/dev/null 2>&1 || true
            deadline=$((SECONDS + WAIT_S))
            while [[ -n "$(timeout 20 runuser -u "$OAR_USER" -- oarstat -u "$OAR_USER" 2>/dev/null \
                | awk '$1 ~ /^[0-9]+$/' || true)" ]] && ((SECONDS < deadline)); do
                sleep 0.5
            done
        fi
    fi
    stop "$RUN/almighty.pid" Almighty
    stop "$RUN/sshd.pid" sshd
    if pid="$(live_pid "$RUN/postgres.pid" postgres)"; then
        log "stopping postgres (pid $pid)"
        # pg_ctl stops the server whose data directory this is, i.e. ours.
        runuser -u postgres -- "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/pg_ctl" \
            -D "$DIR/pgsql/data" -m fast -w -t "$WAIT_S" stop >/dev/null || stop "$RUN/postgres.pid" postgres
        rm -f "$RUN/postgres.pid"
    fi
fi

if [[ "$PURGE" -eq 1 ]]; then
    if [[ -f "$DIR/env.sh" ]] && grep -qF "$MARKER_TAG" "$DIR/env.sh"; then
        if [[ -f "$DIR/etc/acl-grants" ]] && command -v setfacl >/dev/null; then
            while read -r d; do
                [[ -n "$d" ]] && setfacl -x "u:$OAR_USER" "$d" 2>/dev/null || true
            done <"$DIR/etc/acl-grants"
        fi
        if [[ -f "$CONF.segscale-orig" ]] && grep -qF "$MARKER_TAG" "$CONF"; then
            log "restoring the package's $CONF"
            mv -f "$CONF.segscale-orig" "$CONF"
        fi
        log "removing $DIR"
        rm -rf -- "$DIR"
    else
        log "not purging $DIR: no oar-up.sh marker in $DIR/env.sh"
    fi
fi
log "done"
