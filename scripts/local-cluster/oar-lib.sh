# Helpers shared by oar-up.sh and oar-down.sh (sourced, not run; lib.sh's process checks too).

# Debian 12's OAR 2.5.9: server (Almighty, PostgreSQL backend), node (sshd on 6667, oarsh) and
# user tools; PostgreSQL for the private database instance; acl for oar-up.sh's grants.
OAR_PACKAGES=(oar-server oar-server-pgsql oar-node oar-user postgresql openssh-server acl)

# oar_packages_installed: every package above is installed.
oar_packages_installed() {
    local pkg
    for pkg in "${OAR_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || return 1
    done
}

# oar_conf_pristine: /etc/oar/oar.conf is the file oar-common's postinst copied (no site edits).
oar_conf_pristine() {
    cmp -s /usr/share/oar/oar-common/oar.conf /etc/oar/oar.conf
}

# oar_write_if_changed PATH MODE OWNER: stdin to PATH only if the content differs.
oar_write_if_changed() {
    local path="$1" mode="$2" owner="$3" tmp
    tmp="$(mktemp "$path.XXXXXX")"
    cat >"$tmp"
    chmod "$mode" "$tmp"
    chown "$owner" "$tmp"
    if [[ -f "$path" ]] && cmp -s "$tmp" "$path"; then
        rm -f "$tmp"
    else
        mv -f "$tmp" "$path"
    fi
}

# oar_wait_for TIMEOUT DESCRIPTION COMMAND...: retry COMMAND every 0.2 s until it succeeds.
oar_wait_for() {
    local timeout="$1" what="$2" deadline
    shift 2
    deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            printf '[oar] timed out after %ss waiting for %s; last log lines:\n' "$timeout" "$what" >&2
            tail -n 20 "${LOGDIR:-/nonexistent}"/*.log >&2 2>/dev/null || true
            return 1
        fi
        sleep 0.2
    done
}
