#!/usr/bin/env bash
# What a long JetStream duplicate window costs nats-server in memory: the figure that decides
# whether the long-horizon dedup could be left to the stream's own Nats-Msg-Id window instead
# of omnigate's follower and index (bench/README.md, "Issue 14: the next step").
#
#   bench/dedup_window_memory.sh [seconds per run]      # default 20; needs build/jetstream_publish_bench
#
# Two runs, each against a fresh nats-server: the raw publish bench (unique Msg-Id per message)
# into a stream whose duplicate window is 7 days, then 100 ms. nats-server holds every id of its
# window in memory, so the difference of its peak RSS (VmHWM) divided by the messages published
# is what the server pays per remembered id (its message cache is the same in both runs).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=${BENCH:-$ROOT/build/jetstream_publish_bench}
SECONDS_RUN=${1:-20}
[[ -x $BENCH ]] || { echo "no $BENCH: build it first (make build)" >&2; exit 2; }
T=$(mktemp -d "${TMPDIR:-/tmp}/omnigate-ddmem.XXXXXX")
NP=""
cleanup() {
  [[ -n $NP ]] && kill "$NP" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Creates stream BENCH_RAW (the bench reuses an existing one) with the given duplicate window,
# over the plain NATS protocol: one request to $JS.API.STREAM.CREATE, its reply checked.
create_stream() {
  python3 - "$1" "$2" <<'PY'
import json, socket, sys
port, window_ns = int(sys.argv[1]), int(sys.argv[2])
cfg = {"name": "BENCH_RAW", "subjects": ["bench.raw.>"], "storage": "file",
       "duplicate_window": window_ns, "num_replicas": 1}
body = json.dumps(cfg).encode()
s = socket.create_connection(("127.0.0.1", port), timeout=10)
f = s.makefile("rb")
f.readline()  # INFO
s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB _INBOX.ddmem 1\r\n')
s.sendall(b"PUB $JS.API.STREAM.CREATE.BENCH_RAW _INBOX.ddmem %d\r\n%s\r\nPING\r\n" % (len(body), body))
while True:
    line = f.readline().strip()
    if line.startswith(b"MSG"):
        reply = json.loads(f.read(int(line.split()[-1]) + 2))
        if "error" in reply:
            sys.exit("stream create failed: %s" % reply["error"])
        print("stream BENCH_RAW, duplicate_window %d ns" % reply["config"]["duplicate_window"])
        break
    if line.startswith(b"-ERR"):
        sys.exit(line.decode())
PY
}

run_once() {  # $1: duplicate window in ns; prints "<messages> <VmHWM kB>"
  local port store
  port=$(free_port)
  store="$T/nats-$1"
  nats-server -js -a 127.0.0.1 -p "$port" -sd "$store" -l "$T/nats-$1.log" &
  NP=$!
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  create_stream "$port" "$1" >&2
  # The bench deletes its stream at the end; the peak RSS keeps what the window held.
  "$BENCH" --url "nats://127.0.0.1:$port" --threads 32 --seconds "$SECONDS_RUN" >"$T/bench-$1.json"
  local hwm
  hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$NP/status")
  kill "$NP"
  wait "$NP" 2>/dev/null || true
  NP=""
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["msgs"], sys.argv[2])' \
    "$T/bench-$1.json" "$hwm"
}

read -r long_msgs long_hwm < <(run_once 604800000000000)  # 7 days
read -r short_msgs short_hwm < <(run_once 100000000)      # 100 ms
echo "7-day window: $long_msgs messages, nats-server peak RSS $((long_hwm / 1024)) MB"
echo "100 ms window: $short_msgs messages, nats-server peak RSS $((short_hwm / 1024)) MB"
awk -v lm="$long_msgs" -v lh="$long_hwm" -v sh="$short_hwm" 'BEGIN {
  printf "per id remembered by the 7-day window: %.0f bytes of nats-server RSS\n", (lh - sh) * 1024 / lm }'
