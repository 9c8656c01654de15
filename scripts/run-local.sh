#!/usr/bin/env bash
# `make run`: a local NATS with JetStream (data in var/nats) unless the config points at a NATS
# that is already there, then omnigate in the foreground. Ctrl-C (or SIGTERM to this script)
# stops omnigate first, then what this script started, and exits with omnigate's status: 0 for
# a clean stop, so make does not report "Error 130".
set -euo pipefail
binary="$1"
config="$2"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
mkdir -p var

# Development secrets, generated once, kept out of the repository (the same list as the
# Docker image: scripts/dev-secrets.sh).
scripts/dev-secrets.sh var/dev.env
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
  sink_pid=""
  nats_pid=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM  # before omnigate runs there is nothing to stop cleanly

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

if port_open "$nats_host" "$nats_port"; then
  echo "omnigate: using the NATS already listening at $nats_url"
elif [ "$nats_host" = "127.0.0.1" ] || [ "$nats_host" = "localhost" ]; then
  mkdir -p var/nats
  # Its own session: Ctrl-C in this terminal reaches omnigate, not NATS, which stays up until
  # omnigate has closed its connection (no "disconnected" warning at the end).
  setsid nats-server -js -a 127.0.0.1 -p "$nats_port" -sd "$root/var/nats" -l "$root/var/nats.log" &
  nats_pid=$!
  for _ in $(seq 1 100); do port_open 127.0.0.1 "$nats_port" && break; sleep 0.1; done
  port_open 127.0.0.1 "$nats_port" || { echo "omnigate: nats-server did not start, see var/nats.log" >&2; exit 1; }
  echo "omnigate: started nats-server with JetStream on 127.0.0.1:$nats_port (data in var/nats, log in var/nats.log)"
else
  echo "omnigate: NATS at $nats_url is not reachable yet; omnigate will keep trying (503 until then)"
fi

# A local SMTP sink for the double opt-in e-mails (consent.smtp.url defaults to port 2525):
# every message is saved as var/mail/NNNN.eml, decoded beside it as NNNN.txt (text and links),
# and logged with its subject.
if port_open 127.0.0.1 2525; then
  echo "omnigate: using the SMTP server already listening on 127.0.0.1:2525"
elif [ -d tests/browser/node_modules ]; then
  setsid node tests/browser/smtp-sink.mjs --port 2525 --dir var/mail &
  sink_pid=$!
  for _ in $(seq 1 50); do port_open 127.0.0.1 2525 && break; sleep 0.1; done
  port_open 127.0.0.1 2525 || echo "omnigate: the mail sink did not start; confirmation e-mails will fail" >&2
else
  echo "omnigate: no mail sink (tests/browser/node_modules is missing: run scripts/install-deps.sh)"
fi

shown_host="$http_addr"; [ "$shown_host" = "0.0.0.0" ] && shown_host=127.0.0.1

"$binary" run --config "$config" &
gateway_pid=$!
gateway_status=0
stop_all() {
  trap - INT TERM
  if kill -0 "$gateway_pid" 2>/dev/null; then kill -TERM "$gateway_pid" 2>/dev/null || true; fi
  wait "$gateway_pid" 2>/dev/null
  gateway_status=$?
  cleanup
  exit "$gateway_status"
}
trap stop_all INT TERM

# The banner once the port is bound (omnigate logs "listening on" then), not before.
for _ in $(seq 1 300); do
  port_open "$shown_host" "$http_port" && break
  kill -0 "$gateway_pid" 2>/dev/null || break
  sleep 0.1
done
if ! port_open "$shown_host" "$http_port"; then
  wait "$gateway_pid" 2>/dev/null; gateway_status=$?
  echo "omnigate: did not start listening on $shown_host:$http_port (exit $gateway_status); see its log above" >&2
  cleanup
  exit "$gateway_status"
fi
cat <<TXT

  omnigate listens on http://$shown_host:$http_port   (config: $config)

  Send a first interaction:

    curl -i http://$shown_host:$http_port/v1/api/crm-import \\
      -H "Authorization: Bearer $OMNIGATE_API_TOKEN" \\
      -H "Content-Type: application/json" \\
      -H "Idempotency-Key: first-\$(date +%s)" \\
      -d '{"kind":"message","contact":{"display_name":"Иван Петров","identifiers":[{"type":"phone","raw":"8 (912) 345-67-89"}]},"message":{"native_id":"1","text":"Здравствуйте!"}}'

  In another terminal, in $root:

    export PATH=\$PWD/bin:\$PATH      # bin/omnigate = $binary with the secrets of var/dev.env
    omnigate tail --pretty           # interactions as they arrive, one line each
    omnigate --help                  # every command

  Demo form: http://$shown_host:$http_port/demo/callback
  Confirmation e-mails: var/mail/NNNN.txt (decoded, with their links; NNNN.eml as sent)

  Health: http://$shown_host:$http_port/readyz   Metrics: http://$shown_host:$http_port/metrics
  Status page: http://$shown_host:$http_port/status   (any user name, password $OMNIGATE_STATUS_TOKEN)
  (The development secrets are in var/dev.env; Ctrl-C stops everything.)

TXT
wait "$gateway_pid"
gateway_status=$?
cleanup
exit "$gateway_status"
