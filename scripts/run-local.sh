#!/usr/bin/env bash
# `make run`: a local NATS with JetStream (data in var/nats) unless the config points at a NATS
# that is already there, then omnigate in the foreground. Ctrl-C stops both.
set -euo pipefail
binary="$1"
config="$2"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
mkdir -p var

# Development secrets, generated once, kept out of the repository.
touch var/dev.env
chmod 600 var/dev.env
grep -q '^OMNIGATE_API_TOKEN=' var/dev.env || echo "OMNIGATE_API_TOKEN=$(openssl rand -hex 24)" >> var/dev.env
grep -q '^OMNIGATE_CONSENT_KEY=' var/dev.env || echo "OMNIGATE_CONSENT_KEY=$(openssl rand -hex 32)" >> var/dev.env
grep -q '^TELEGRAM_WEBHOOK_SECRET=' var/dev.env || echo "TELEGRAM_WEBHOOK_SECRET=$(openssl rand -hex 24)" >> var/dev.env
grep -q '^WHATSAPP_APP_SECRET=' var/dev.env || echo "WHATSAPP_APP_SECRET=$(openssl rand -hex 16)" >> var/dev.env
grep -q '^WHATSAPP_VERIFY_TOKEN=' var/dev.env || echo "WHATSAPP_VERIFY_TOKEN=$(openssl rand -hex 24)" >> var/dev.env
grep -q '^VK_CALLBACK_SECRET=' var/dev.env || echo "VK_CALLBACK_SECRET=$(openssl rand -hex 24)" >> var/dev.env
grep -q '^OMNIGATE_EMAIL_TOKEN=' var/dev.env || echo "OMNIGATE_EMAIL_TOKEN=$(openssl rand -hex 24)" >> var/dev.env
set -a
# shellcheck disable=SC1091
. var/dev.env
set +a

nats_url="$("$binary" check-config "$config" --print nats.url)"
http_addr="$("$binary" check-config "$config" --print http.address)"
http_port="$("$binary" check-config "$config" --print http.port)"
hostport="${nats_url#nats://}"; hostport="${hostport%%,*}"; hostport="${hostport##*@}"
nats_host="${hostport%%:*}"; nats_port="${hostport##*:}"
[ "$nats_port" = "$hostport" ] && nats_port=4222

nats_pid=""
sink_pid=""
cleanup() {
  if [ -n "$sink_pid" ]; then kill "$sink_pid" 2>/dev/null || true; wait "$sink_pid" 2>/dev/null || true; fi
  if [ -n "$nats_pid" ]; then kill "$nats_pid" 2>/dev/null || true; wait "$nats_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT INT TERM

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

if port_open "$nats_host" "$nats_port"; then
  echo "omnigate: using the NATS already listening at $nats_url"
elif [ "$nats_host" = "127.0.0.1" ] || [ "$nats_host" = "localhost" ]; then
  mkdir -p var/nats
  nats-server -js -a 127.0.0.1 -p "$nats_port" -sd "$root/var/nats" -l "$root/var/nats.log" &
  nats_pid=$!
  for _ in $(seq 1 100); do port_open 127.0.0.1 "$nats_port" && break; sleep 0.1; done
  port_open 127.0.0.1 "$nats_port" || { echo "omnigate: nats-server did not start, see var/nats.log" >&2; exit 1; }
  echo "omnigate: started nats-server with JetStream on 127.0.0.1:$nats_port (data in var/nats, log in var/nats.log)"
else
  echo "omnigate: NATS at $nats_url is not reachable yet; omnigate will keep trying (503 until then)"
fi

# A local SMTP sink for the double opt-in e-mails (consent.smtp.url defaults to port 2525):
# every message is saved as var/mail/NNNN.eml and logged with its subject.
if port_open 127.0.0.1 2525; then
  echo "omnigate: using the SMTP server already listening on 127.0.0.1:2525"
elif [ -d tests/browser/node_modules ]; then
  node tests/browser/smtp-sink.mjs --port 2525 --dir var/mail &
  sink_pid=$!
  for _ in $(seq 1 50); do port_open 127.0.0.1 2525 && break; sleep 0.1; done
  port_open 127.0.0.1 2525 || echo "omnigate: the mail sink did not start; confirmation e-mails will fail" >&2
else
  echo "omnigate: no mail sink (tests/browser/node_modules is missing: run scripts/install-deps.sh)"
fi

shown_host="$http_addr"; [ "$shown_host" = "0.0.0.0" ] && shown_host=127.0.0.1
cat <<TXT

  omnigate listens on http://$shown_host:$http_port   (config: $config)

  Send a first interaction:

    curl -i http://$shown_host:$http_port/v1/api/crm-import \\
      -H "Authorization: Bearer $OMNIGATE_API_TOKEN" \\
      -H "Content-Type: application/json" \\
      -H "Idempotency-Key: first-\$(date +%s)" \\
      -d '{"kind":"message","contact":{"display_name":"Иван Петров","identifiers":[{"type":"phone","raw":"8 (912) 345-67-89"}]},"message":{"native_id":"1","text":"Здравствуйте!"}}'

  Watch interactions arrive (another terminal):

    $binary tail --config $config

  Demo form: http://$shown_host:$http_port/demo/callback   (confirmation e-mails land in var/mail/)

  Health: http://$shown_host:$http_port/readyz   Metrics: http://$shown_host:$http_port/metrics
  (The API token is in var/dev.env.)

TXT
"$binary" run --config "$config" &
gateway_pid=$!
trap 'kill "$gateway_pid" 2>/dev/null || true; wait "$gateway_pid" 2>/dev/null || true; cleanup' EXIT INT TERM
wait "$gateway_pid"
