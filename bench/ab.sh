#!/usr/bin/env bash
# A/B of one build on the Telegram webhook, for comparing builds (allocators, serializers) in
# the same minute: starts its own nats-server and the given omnigate binary with bench/bench.yaml,
# runs wrk with bench/telegram_update.lua, prints req/s, p99 and the CPU microseconds per
# published interaction of omnigate and nats-server (over the middle of the run).
#
#   bench/ab.sh build/omnigate
#   bench/ab.sh build/omnigate LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2
#   AB_SECONDS=8 AB_PERF=1 bench/ab.sh build/omnigate   # AB_PERF: perf record into $TMPDIR/ab.perf
#   AB_CHANNEL=api bench/ab.sh build/omnigate          # the API channel (bench/api_message.lua)
#   AB_CHANNEL=whatsapp100 bench/ab.sh build/omnigate  # signed WhatsApp POSTs of 100 messages each
#   AB_PERF_CALLGRAPH="--call-graph dwarf" ...         # stacks through code built without frame pointers
#   bench/ab.sh bench/peers/node/server.mjs           # the Node peer (npm ci on first use)
#   bench/ab.sh build/epoll_probe                      # the epoll front probe (bench/epoll_probe.cpp)
#   bench/ab.sh build/front_probe                      # the webhook on LoopServer + LoopPublisher
#   AB_CHANNEL=noop bench/ab.sh build/omnigate         # the no-op route, the Telegram requests (per request)
#   AB_COUNT=1 bench/ab.sh build/omnigate   # also syscalls, futex calls, context switches per interaction
set -euo pipefail
[[ $# -ge 1 ]] || { echo "usage: bench/ab.sh <omnigate binary> [NAME=value ...]" >&2; exit 2; }
BIN=$(realpath "$1")
shift
# The Node peer (bench/peers/node/server.mjs) runs in omnigate's place and counts on /stats.
IS_PEER=""
[[ $(basename "$BIN") == server.mjs ]] && IS_PEER=1
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECONDS_RUN=${AB_SECONDS:-8}
CHANNEL=${AB_CHANNEL:-telegram}
case $CHANNEL in
  telegram) SCRIPT=telegram_update.lua ROUTE=/v1/telegram/benchbot ;;
  api) SCRIPT=api_message.lua ROUTE=/v1/api/bench ;;
  whatsapp100) SCRIPT=whatsapp_webhook.lua ROUTE=/v1/whatsapp/benchwa ;;  # 100 messages a POST
  # The no-op route sent the Telegram requests: CPU per request (req/s x the sampled window).
  noop) SCRIPT=noop_telegram.lua ROUTE=/v1/noop ;;
  *) echo "AB_CHANNEL must be telegram, api, whatsapp100 or noop" >&2; exit 2 ;;
esac
((SECONDS_RUN >= 4)) || { echo "AB_SECONDS must be at least 4" >&2; exit 2; }
T=$(mktemp -d "${TMPDIR:-/tmp}/omnigate-ab.XXXXXX")
NP="" GP=""
cleanup() {
  [[ -n $GP ]] && kill "$GP" 2>/dev/null || true
  [[ -n $NP ]] && kill "$NP" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
random_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
nats_port=$(free_port)
gw_port=$(free_port)
nats-server -js -a 127.0.0.1 -p "$nats_port" -sd "$T/nats" -l "$T/nats.log" &
NP=$!
export OMNIGATE_BENCH_TOKEN=$(random_hex 24) OMNIGATE_BENCH_TG_SECRET=$(random_hex 32)
export OMNIGATE_BENCH_VK_SECRET=$(random_hex 16) OMNIGATE_BENCH_VK_CONFIRMATION=$(random_hex 4)
export OMNIGATE_BENCH_WA_SECRET=$(random_hex 32) OMNIGATE_BENCH_WA_VERIFY=$(random_hex 24)
export OMNIGATE_BENCH_PORT=$gw_port OMNIGATE_BENCH_NATS=nats://127.0.0.1:$nats_port
export OMNIGATE_BENCH_HTTP_THREADS=64
if [[ $CHANNEL == whatsapp100 ]]; then
  # Signed bodies for the run's secret, enough for 1000 POSTs a second.
  export OMNIGATE_BENCH_WA_FILE="$T/whatsapp_100.txt" OMNIGATE_BENCH_WA_THREADS=2
  python3 "$ROOT/bench/whatsapp_requests.py" --secret "$OMNIGATE_BENCH_WA_SECRET" \
    --count $((SECONDS_RUN * 1000)) --messages 100 --out "$OMNIGATE_BENCH_WA_FILE"
  CHANNEL=whatsapp
fi
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && break; sleep 0.1; done
if [[ -n $IS_PEER ]]; then
  # On its own stream, as in bench/run.sh.
  [[ $CHANNEL == telegram ]] || { echo "the Node peer serves the Telegram webhook only" >&2; exit 2; }
  PEER_DIR=$(dirname "$BIN")
  if [[ ! -f $PEER_DIR/node_modules/.package-lock.json ]]; then
    (cd "$PEER_DIR" && npm ci --no-audit --no-fund --fetch-retries=1 --fetch-timeout=30000) >"$T/npm.log" 2>&1 ||
      { tail -n 15 "$T/npm.log" >&2; echo "npm ci in $PEER_DIR failed" >&2; exit 1; }
  fi
  (cd "$T" && PEER_PORT=$gw_port PEER_NATS_URL=$OMNIGATE_BENCH_NATS PEER_TG_SECRET=$OMNIGATE_BENCH_TG_SECRET \
    PEER_ACCOUNT=benchbot PEER_SUBJECT_ROOT=nodepeer.interactions PEER_STREAM=NODE_PEER_INTERACTIONS \
    exec env "$@" node "$BIN" >"$T/omnigate.log" 2>&1) &
else
  (cd "$T" && exec env "$@" "$BIN" run --config "$ROOT/bench/bench.yaml" >"$T/omnigate.log" 2>&1) &
fi
GP=$!
for _ in $(seq 150); do curl -fs -o /dev/null "http://127.0.0.1:$gw_port/readyz" && break; sleep 0.1; done
curl -fs -o /dev/null "http://127.0.0.1:$gw_port/readyz" || { tail "$T/omnigate.log" >&2; exit 1; }
ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
published() {
  if [[ -n $IS_PEER ]]; then
    curl -s "http://127.0.0.1:$gw_port/stats" | sed -n 's/.*"published":\([0-9]*\).*/\1/p'
    return
  fi
  curl -s "http://127.0.0.1:$gw_port/metrics" |
    awk -v c="$CHANNEL" '$0 ~ "^omnigate_interactions_published_total\\{channel=\"" c "\"" { s += $2 } END { print s + 0 }'
}
wrk -t2 -c32 "-d${SECONDS_RUN}s" --latency -s "$ROOT/bench/$SCRIPT" \
  "http://127.0.0.1:$gw_port$ROUTE" >"$T/wrk.out" 2>&1 &
WP=$!
sleep 1
if [[ -n ${AB_PERF:-} ]]; then
  perf record -e cpu-clock -F 499 ${AB_PERF_CALLGRAPH:--g} -p "$GP" -o "${TMPDIR:-/tmp}/ab.perf" -- sleep $((SECONDS_RUN - 3)) \
    >/dev/null 2>&1 &
fi
g0=$(ticks "$GP"); n0=$(ticks "$NP"); p0=$(published)
if [[ -n ${AB_COUNT:-} ]]; then
  # Counts are what CPU steal on a shared host does not change: syscalls, futex calls and
  # context switches of omnigate's threads per interaction, over the same window.
  perf stat -x, -e context-switches,raw_syscalls:sys_enter,syscalls:sys_enter_futex -p "$GP" \
    -o "$T/counts.csv" -- sleep $((SECONDS_RUN - 2)) >/dev/null 2>&1
else
  sleep $((SECONDS_RUN - 2))
fi
g1=$(ticks "$GP"); n1=$(ticks "$NP"); p1=$(published)
wait "$WP"
if [[ -n ${AB_COUNT:-} ]]; then
  awk -F, -v p=$((p1 - p0)) '$3 ~ /context-switches/ { cs = $1 } $3 ~ /raw_syscalls/ { sc = $1 }
    $3 ~ /sys_enter_futex/ { fx = $1 }
    END { if (p > 0) printf "per interaction: %.2f syscalls (%.2f futex), %.2f context switches\n", sc / p, fx / p, cs / p }' \
    "$T/counts.csv"
fi
awk -v g=$((g1 - g0)) -v n=$((n1 - n0)) -v p=$((p1 - p0)) -v hz="$(getconf CLK_TCK)" \
  -v noop="$([[ $CHANNEL == noop ]] && echo $((SECONDS_RUN - 2)))" '
  /Requests\/sec/ { rps = $2 } $1 == "99%" { p99 = $2 } /Non-2xx/ { bad = $4 }
  END { if (noop != "") p = int(rps * noop)
        if (p == 0) { print "nothing published"; exit 1 }
        printf "req/s %s p99 %s non-2xx %d | omnigate %.1f us, nats-server %.1f us per interaction (%d interactions, +-%.1f us)\n",
               rps, p99, bad, g * 1e6 / hz / p, n * 1e6 / hz / p, p, 2 * 1e6 / hz / p }' "$T/wrk.out"
# bench/whatsapp_webhook.lua says so when it ran out of distinct bodies (repeats are duplicates).
grep -h '^wrapped around' "$T/wrk.out" || true
