#!/usr/bin/env bash
# List the segscale jobs known to Slurm accounting (sacct) for the last N hours.
#
# "segscale jobs" are those submitted by Snakemake's slurm executor (it sets --comment
# rule_<rule>[_wildcards_<...>] and a run-UUID job name, optionally prefixed through
# --slurm-jobname-prefix) or any job whose name contains "segscale".  One line per job; NTASKS
# is the largest task count of its steps (the allocation line itself carries none).
#
# Usage: scripts/sacct-runs.sh [-H HOURS] [-a] [-A]
#   -H HOURS  look back this many hours (default 24)
#   -a        all users (default: the current user)
#   -A        all jobs, not only segscale/Snakemake ones
# The RULE column is the job's comment where the site stores comments
# (AccountingStoreFlags=job_comment, as the local emulator does); elsewhere it is read from the
# job's submit line (sacct's SubmitLine: the executor's `--target-jobs 'rule:wildcards'`), so
# the jobs are found on sites that do not store comments too.
set -euo pipefail

HOURS=24
ALL_USERS=0
ALL_JOBS=0
while getopts ':H:aAh' opt; do
    case "$opt" in
        H) HOURS="$OPTARG" ;;
        a) ALL_USERS=1 ;;
        A) ALL_JOBS=1 ;;
        h)
            sed -n '2,15p' "$0"
            exit 0
            ;;
        *)
            echo "usage: $0 [-H HOURS] [-a] [-A]" >&2
            exit 2
            ;;
    esac
done
if ! [[ "$HOURS" =~ ^[0-9]+$ ]]; then
    echo "sacct-runs: -H wants whole hours, got '$HOURS'" >&2
    exit 2
fi

# No --endtime: its default is "now", and an explicit "now" hides jobs that ended in the last
# few seconds (seen with 22.05: `-j ID` already reports them, a time window does not yet).
format="JobID,JobName%80,State,Elapsed,NNodes,NTasks,AllocTRES%120,Comment%200"
# SubmitLine (Slurm >= 20.11) last: a '|' inside it cannot shift the other columns.
if sacct --helpformat 2>/dev/null | grep -qw SubmitLine; then
    format="$format,SubmitLine%4000"
fi
args=(--parsable2 --noheader --starttime "now-${HOURS}hours" "--format=$format")
if [[ "$ALL_USERS" -eq 1 ]]; then
    args+=(--allusers)
fi

# '|' separates fields; SubmitLine is last so a '|' inside it cannot shift the other columns.
sacct "${args[@]}" | awk -F'|' -v all_jobs="$ALL_JOBS" '
    function keep(name, comment) {
        return all_jobs == 1 || comment ~ /^rule_/ || tolower(name) ~ /segscale/
    }
    # The executor comment rule_<rule>[_wildcards_<values joined by _>] rebuilt from the
    # submit line: --target-jobs '"'"'<rule>:<key>=<value>,...'"'"'.
    function rule_of(submit,    at, rest, end, spec, colon, rule, wc, n, parts, i, out) {
        at = index(submit, "--target-jobs ")
        if (at == 0) return ""
        rest = substr(submit, at + 14)
        sub(/^'"'"'/, "", rest)
        end = match(rest, /['"'"' ]/)
        spec = end ? substr(rest, 1, end - 1) : rest
        colon = index(spec, ":")
        if (colon == 0) return ""
        rule = substr(spec, 1, colon - 1)
        wc = substr(spec, colon + 1)
        if (wc == "") return "rule_" rule
        n = split(wc, parts, ",")
        out = ""
        for (i = 1; i <= n; i++) {
            sub(/^[^=]*=/, "", parts[i])
            out = out (i > 1 ? "_" : "") parts[i]
        }
        return "rule_" rule "_wildcards_" out
    }
    {
        id = $1
        if (index(id, ".") == 0) {
            # Allocation line: one row per job, in sacct order.
            comment = $8
            submit = $9
            for (i = 10; i <= NF; i++) submit = submit "|" $i
            if (comment == "") comment = rule_of(submit)
            if (!keep($2, comment)) { skip[id] = 1; next }
            n++
            order[n] = id
            name[id] = $2; state[id] = $3; elapsed[id] = $4; nodes[id] = $5
            tres[id] = $7; rule[id] = comment; ntasks[id] = 0
            next
        }
        # Step line (123.0, 123.batch, 123.extern): count tasks of real steps only.
        split(id, parts, ".")
        job = parts[1]
        if (job in skip || parts[2] == "batch" || parts[2] == "extern") next
        if ($6 + 0 > ntasks[job]) ntasks[job] = $6 + 0
    }
    END {
        if (n == 0) { print "no matching jobs" > "/dev/stderr"; exit 0 }
        hdr[1] = "JOBID"; hdr[2] = "RULE"; hdr[3] = "STATE"; hdr[4] = "ELAPSED"
        hdr[5] = "NODES"; hdr[6] = "NTASKS"; hdr[7] = "ALLOC_TRES"; hdr[8] = "NAME"
        for (c = 1; c <= 8; c++) w[c] = length(hdr[c])
        for (r = 1; r <= n; r++) {
            id = order[r]
            row[r, 1] = id; row[r, 2] = (rule[id] == "" ? "-" : rule[id])
            row[r, 3] = state[id]; row[r, 4] = elapsed[id]; row[r, 5] = nodes[id]
            row[r, 6] = (ntasks[id] > 0 ? ntasks[id] : "-"); row[r, 7] = tres[id]
            row[r, 8] = name[id]
            for (c = 1; c <= 8; c++) if (length(row[r, c]) > w[c]) w[c] = length(row[r, c])
        }
        # Last column unpadded: no trailing blanks.
        for (c = 1; c < 8; c++) printf "%-*s  ", w[c], hdr[c]
        print hdr[8]
        for (r = 1; r <= n; r++) {
            for (c = 1; c < 8; c++) printf "%-*s  ", w[c], row[r, c]
            print row[r, 8]
        }
    }
'
