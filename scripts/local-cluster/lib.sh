# Process checks shared by slurm-up.sh and slurm-down.sh (sourced, not run).
# Both only ever act on the PIDs the scripts recorded, and check the process name too, so a
# recycled PID (after a container restart) is never mistaken for one of our daemons.

# is_running PID COMM: PID is a process named COMM that has not exited.  A zombie (state Z, no
# threads left) counts as exited: in a container PID 1 may never reap re-parented daemons.
is_running() {
    local pid="$1" comm="$2"
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$comm" ]] || return 1
    if grep -q '^[0-9]* ([^)]*) Z' "/proc/$pid/stat" 2>/dev/null; then
        # A zombie leader can still have live threads; gone only when none are left.
        [[ "$(find "/proc/$pid/task" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)" -gt 1 ]]
        return
    fi
    return 0
}

# live_pid PIDFILE COMM: print the PID if it is alive and named COMM.
live_pid() {
    local pidfile="$1" comm="$2" pid
    [[ -s "$pidfile" ]] || return 1
    pid="$(tr -d '[:space:]' <"$pidfile")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    is_running "$pid" "$comm" || return 1
    printf '%s\n' "$pid"
}

# pid_alive PIDFILE COMM: true if PIDFILE names a live process named COMM.
pid_alive() {
    live_pid "$1" "$2" >/dev/null
}

# stop PIDFILE COMM: SIGTERM, wait up to WAIT_S (the caller's) for exit, then SIGKILL as a
# last resort; logs through the caller's log().
stop() {
    local pidfile="$1" comm="$2" pid deadline
    if ! pid="$(live_pid "$pidfile" "$comm")"; then
        rm -f "$pidfile"
        return 0
    fi
    log "stopping $comm (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + WAIT_S))
    while is_running "$pid" "$comm"; do
        if ((SECONDS >= deadline)); then
            log "$comm (pid $pid) ignored SIGTERM for ${WAIT_S}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            break
        fi
        sleep 0.2
    done
    rm -f "$pidfile"
}
