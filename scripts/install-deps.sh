#!/usr/bin/env bash
# Installs what omnigate needs on Debian 12, only what is missing, so that
# `make run` and `make test` work on a bare machine. Idempotent and quiet when
# everything is already there.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

mapfile -t wanted < <(grep -v -E '^\s*(#|$)' "$here/debian-packages.txt")
missing=()
for pkg in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
# Node.js and npm run the schema validator (ajv) and the browser tests. A machine that
# already has node (e.g. from NodeSource, whose nodejs conflicts with Debian's npm) keeps it.
if ! command -v node >/dev/null 2>&1; then missing+=(nodejs); fi
if ! command -v npm >/dev/null 2>&1; then missing+=(npm); fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages of the test tools (ajv; playwright-core, smtp-server, mailparser) and of the
# Node CRM example (nats), pinned by each directory's package-lock.json.
for dir in tests/schema tests/browser examples/node; do
  if [ -f "$root/$dir/package-lock.json" ] && [ ! -d "$root/$dir/node_modules" ]; then
    echo "install-deps: npm ci in $dir"
    (cd "$root/$dir" && npm ci --silent --no-audit --no-fund)
  fi
done
