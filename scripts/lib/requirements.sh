# Shared by scripts/setup.sh and scripts/install-train-env.sh (sourced, not run).

# requirements_closure FILE: FILE and every file it includes with -r/--requirement (recursively,
# relative to the including file, as pip reads them), each under a "### path" header. A stamp of
# this output changes whenever a pin an install of FILE would use changes, in any of its files.
requirements_closure() {
  local file="$1" inc
  if [[ ! -f "$file" ]]; then
    echo "requirements: $file not found" >&2
    return 1
  fi
  printf '### %s\n' "$file"
  cat "$file"
  while read -r inc; do
    requirements_closure "$(dirname "$file")/$inc" || return 1
  done < <(sed -nE 's/^[[:space:]]*(-r|--requirement)[[:space:]=]+([^[:space:]#]+).*/\2/p' "$file")
}
