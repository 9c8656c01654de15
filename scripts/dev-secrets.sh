#!/bin/sh
# Development secrets, generated once into FILE (mode 600) and kept there: each variable the
# example config names with ${VAR} and no default gets a random value unless FILE already
# has one. Used by `make run` (scripts/run-local.sh: var/dev.env) and by the Docker image's
# entrypoint (docker/entrypoint.sh: a volume), so both have the same list. Not for production:
# there the service's environment holds real secrets.
#   scripts/dev-secrets.sh FILE
set -eu
file="${1:?usage: dev-secrets.sh FILE}"

mkdir -p "$(dirname "$file")"
umask 077
touch "$file"
chmod 600 "$file"

# NAME BYTES: the variable and how many random bytes its hex value has.
add() {
  grep -q "^$1=" "$file" || echo "$1=$(openssl rand -hex "$2")" >>"$file"
}
add OMNIGATE_API_TOKEN 24
add OMNIGATE_CONSENT_KEY 32
add TELEGRAM_WEBHOOK_SECRET 24
add WHATSAPP_APP_SECRET 16
add WHATSAPP_VERIFY_TOKEN 24
add VK_CALLBACK_SECRET 24
add OMNIGATE_EMAIL_TOKEN 24
# Optional in the config (${VAR:-}), generated here so `make run` has them on: the status
# page and the e-mail attachment route (GET /v1/media/email/<account>/<id>/<part>).
add OMNIGATE_STATUS_TOKEN 24
add OMNIGATE_EMAIL_MEDIA_TOKEN 24
