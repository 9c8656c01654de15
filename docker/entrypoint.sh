#!/bin/sh
# The image's entrypoint: the development secrets `make run` has, then omnigate.
#   entrypoint.sh <omnigate arguments>      e.g. run --config /etc/omnigate/omnigate.yaml
# OMNIGATE_DEV_SECRETS (default /var/lib/omnigate/secrets/dev.env, a volume): generated there
# once by dev-secrets.sh (the list `make run` uses), so a restarted or re-created container
# keeps its tokens and its consent links stay valid. A variable set non-empty in the
# environment wins over the file: real secrets come from the environment
# (docker compose: OMNIGATE_API_TOKEN=... docker compose up). OMNIGATE_DEV_SECRETS=off: no
# file at all, every secret from the environment (production).
set -eu
binary="${OMNIGATE_BINARY:-/usr/local/lib/omnigate/omnigate}"
generator="${OMNIGATE_DEV_SECRETS_SCRIPT:-/usr/local/lib/omnigate/dev-secrets.sh}"
secrets="${OMNIGATE_DEV_SECRETS:-/var/lib/omnigate/secrets/dev.env}"

if [ "$secrets" != off ]; then
  "$generator" "$secrets"
  while IFS= read -r line; do
    case "$line" in
      [A-Za-z_]*=*)
        name=${line%%=*}
        case "$name" in *[!A-Za-z0-9_]*) continue ;; esac
        eval "current=\${$name:-}"
        # shellcheck disable=SC2163 # exports NAME=value as the line has it
        [ -n "$current" ] || export "$line"
        ;;
    esac
  done <"$secrets"
fi
exec "$binary" "$@"
