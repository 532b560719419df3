#!/usr/bin/env bash
# Install segscale's user-profile templates where Snakemake looks for `--profile NAME`, so that
# `snakemake --profile slurm` (or local, oar, ...) works from the repository as typed.
#
# A template is a folder of the repository holding a profile.yaml: profiles/<NAME>/ (slurm,
# local, ...; profiles/default is the workflow profile, which Snakemake applies by itself and
# is never installed) or profiles/site/<NAME>/. It is copied to
# ${XDG_CONFIG_HOME:-~/.config}/snakemake/<NAME>/, Snakemake's user profile directory.
# An installed profile is never overwritten: it is the site's edited copy. --force replaces
# it and keeps the old one beside it as <NAME>.bak-<date>. Every action is printed.
#
# Usage: scripts/install-profile.sh [-n] [--force] [--list] [--dest DIR] [NAME...]
#   NAME      templates to install (default: all of them)
#   -n        print what would be done, change nothing
#   --force   replace an installed profile that differs from its template (backup kept)
#   --list    list the templates and where they would go
#   --dest D  install into D/<NAME> instead of Snakemake's user profile directory
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

DRY=0
FORCE=0
LIST=0
DEST=""
names=()
while (($#)); do
    case "$1" in
        -n | --dry-run) DRY=1 ;;
        --force) FORCE=1 ;;
        --list) LIST=1 ;;
        --dest)
            [[ $# -ge 2 ]] || { echo "install-profile: --dest needs a directory" >&2; exit 2; }
            DEST="$2"
            shift
            ;;
        -h | --help)
            sed -n '2,18p' "$0"
            exit 0
            ;;
        -*)
            echo "install-profile: unknown option $1 (see --help)" >&2
            exit 2
            ;;
        *) names+=("$1") ;;
    esac
    shift
done

# Snakemake's user profile directory: platformdirs' user_config_dir("snakemake") on Linux.
if [[ -z "$DEST" ]]; then
    config_home="${XDG_CONFIG_HOME:-}"
    if [[ -z "${config_home// /}" || "$config_home" != /* ]]; then
        config_home="$HOME/.config"
    fi
    DEST="$config_home/snakemake"
fi

# template NAME: print the template folder of NAME, or fail.
template() {
    local name="$1"
    if [[ "$name" == default || "$name" == site || "$name" == */* || -z "$name" ]]; then
        return 1
    fi
    for dir in "$REPO/profiles/site/$name" "$REPO/profiles/$name"; do
        if [[ -f "$dir/profile.yaml" ]]; then
            printf '%s\n' "$dir"
            return 0
        fi
    done
    return 1
}

all_templates() {
    local f name
    for f in "$REPO"/profiles/site/*/profile.yaml "$REPO"/profiles/*/profile.yaml; do
        [[ -f "$f" ]] || continue
        name="$(basename "$(dirname "$f")")"
        [[ "$name" == default ]] && continue
        printf '%s\n' "$name"
    done | awk '!seen[$0]++'
}

if ((${#names[@]} == 0)); then
    mapfile -t names < <(all_templates)
fi
if ((${#names[@]} == 0)); then
    echo "install-profile: no templates under $REPO/profiles" >&2
    exit 1
fi

say() {
    if ((DRY)); then
        printf 'install-profile: would %s\n' "$*"
    else
        printf 'install-profile: %s\n' "$*"
    fi
}

status=0
for name in "${names[@]}"; do
    if ! src="$(template "$name")"; then
        echo "install-profile: no template '$name' (templates: $(all_templates | tr '\n' ' '))" >&2
        status=1
        continue
    fi
    dst="$DEST/$name"
    if ((LIST)); then
        printf '%-8s %s -> %s\n' "$name" "${src#"$REPO"/}" "$dst"
        continue
    fi
    if [[ -e "$dst" ]]; then
        if diff -rq "$src" "$dst" >/dev/null 2>&1; then
            echo "install-profile: $dst is up to date with ${src#"$REPO"/}"
            continue
        fi
        if ((!FORCE)); then
            echo "install-profile: $dst exists and differs from ${src#"$REPO"/}: kept" \
                "(compare: diff -r $src $dst; replace: $0 --force $name)"
            continue
        fi
        backup="$dst.bak-$(date +%Y%m%d-%H%M%S)"
        say "move $dst to $backup"
        ((DRY)) || mv -- "$dst" "$backup"
    fi
    say "install ${src#"$REPO"/} as $dst (use: snakemake --profile $name)"
    if ((!DRY)); then
        mkdir -p "$DEST"
        tmp="$(mktemp -d "$DEST/.$name.XXXXXX")"
        cp -R "$src/." "$tmp/"
        chmod 755 "$tmp"
        mv -- "$tmp" "$dst"
    fi
done
exit "$status"
