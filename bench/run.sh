#!/usr/bin/env bash
# omnigate benchmark: one command, self-contained, bounded in time. See bench/README.md.
#
#   bench/run.sh                       # BENCH_SECONDS=10 BENCH_CONNECTIONS=32
#   BENCH_SECONDS=30 bench/run.sh
#
# Starts its own nats-server (JetStream, temp store dir) and its own omnigate on free
# loopback ports, runs (a) wrk against POST /v1/noop, (b) wrk against the API channel,
# (d) wrk against POST /v1/noop with the Telegram request (d0), then against the Telegram
# webhook, (c) build/jetstream_publish_bench against the same nats-server, and prints a
# markdown report to stdout and bench/results/latest.md. Progress goes to stderr.
# Exit status: 0 when every scenario was measured (whatever the PASS/MISS verdicts),
# nonzero when the build, a server or a measurement failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR="$ROOT/bench"
BUILD=${BENCH_BUILD_DIR:-$ROOT/build}
DURATION=${BENCH_SECONDS:-10}
CONN=${BENCH_CONNECTIONS:-32}
WRK_THREADS=2

# Targets (see README): API and Telegram ≥ 50% of no-op req/s (each against a no-op run with
# its own bytes), p99 ≤ 20 ms at 32 connections, RSS ≤ 64 MB idle and ≤ 256 MB under load.
TARGET_RATIO=0.50
TARGET_P99_MS=20
TARGET_RSS_IDLE_MB=64
TARGET_RSS_LOAD_MB=256

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if ! [[ $DURATION =~ ^[0-9]+$ ]] || ((DURATION < 2 || DURATION > 600)); then
  die "BENCH_SECONDS must be an integer in 2..600 (got '$DURATION')"
fi
if ! [[ $CONN =~ ^[0-9]+$ ]] || ((CONN < WRK_THREADS || CONN > 1024)); then
  die "BENCH_CONNECTIONS must be an integer in $WRK_THREADS..1024 (got '$CONN')"
fi
for tool in cmake wrk nats-server curl awk; do
  command -v "$tool" >/dev/null || die "'$tool' is not installed"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/omnigate-bench.XXXXXX")
NATS_PID=""
GW_PID=""
LOAD_PID=""

# Stops one process we started: TERM, up to 5 s of polling, then KILL.
stop_pid() {
  local pid=$1
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_pid "$LOAD_PID"
  stop_pid "$GW_PID"
  stop_pid "$NATS_PID"
  rm -rf "$TMP"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build -------------------------------------------------------------------------------
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null || true)
if [[ $build_type != Release ]]; then
  log "configuring $BUILD (Release)"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >"$TMP/configure.log" 2>&1 ||
    { tail -n 30 "$TMP/configure.log" >&2; die "cmake configure failed"; }
fi
log "building omnigate and jetstream_publish_bench"
cmake --build "$BUILD" -j2 --target omnigate jetstream_publish_bench >"$TMP/build.log" 2>&1 ||
  { grep -E 'error|Error' "$TMP/build.log" | head -n 20 >&2; die "build failed (see above)"; }
OMNIGATE="$BUILD/omnigate"
RAW_BENCH="$BUILD/jetstream_publish_bench"

# --- helpers -----------------------------------------------------------------------------
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  local p
  if p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null); then
    echo "$p"
    return
  fi
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 40000))
    port_open "$p" || { echo "$p"; return; }
  done
  die "no free port found"
}

# Polls a condition every 100 ms for up to $1 seconds while process $2 stays alive.
wait_for() {
  local seconds=$1 pid=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  while ((SECONDS < deadline)); do
    "$@" && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

ready() { curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$GW_PORT/readyz" 2>/dev/null; }

status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# utime + stime of a process (all threads), in clock ticks; fields after "comm)".
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'; }
# busy and total ticks of the whole machine.
machine_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }
now_ns() { date +%s%N; }
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)

# Runs a load generator in the background ($1 = scenario name, rest = command), samples CPU
# of omnigate, nats-server and the generator over the middle of the run, waits for it.
# Leaves output in $TMP/<name>.out and CPU columns in $TMP/<name>.cpu.
run_load() {
  local name=$1
  shift
  "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  LOAD_PID=$!
  local started=$SECONDS
  sleep 0.5  # sample window starts after connection setup and warm-up of the first requests
  local t0 gw0 na0 ld0 m0
  t0=$(now_ns); gw0=$(cpu_ticks "$GW_PID"); na0=$(cpu_ticks "$NATS_PID")
  ld0=$(cpu_ticks "$LOAD_PID"); m0=$(machine_ticks)
  sleep "$(awk -v d="$DURATION" 'BEGIN { print d - 1 }')"
  local t1 gw1 na1 ld1 m1
  t1=$(now_ns); gw1=$(cpu_ticks "$GW_PID"); na1=$(cpu_ticks "$NATS_PID")
  ld1=$(cpu_ticks "$LOAD_PID"); m1=$(machine_ticks)
  # Bounded: the generator stops itself after DURATION; give it 60 s of slack at most.
  while kill -0 "$LOAD_PID" 2>/dev/null; do
    if ((SECONDS - started > DURATION + 60)); then
      log "$name: still running after $((DURATION + 60)) s, stopping it"
      kill -TERM "$LOAD_PID" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  local rc=0
  wait "$LOAD_PID" || rc=$?
  LOAD_PID=""
  awk -v t0="$t0" -v t1="$t1" -v hz="$HZ" -v ncpu="$NCPU" \
    -v gw="$gw0 $gw1" -v na="$na0 $na1" -v ld="$ld0 $ld1" -v m="$m0 $m1" '
    function pct(pair,   a) { split(pair, a, " "); if (a[1] == "" || a[2] == "") return "n/a";
                            return sprintf("%.0f", (a[2] - a[1]) / hz / secs * 100) }
    BEGIN { secs = (t1 - t0) / 1e9
            split(m, x, " ")  # busy0 total0 busy1 total1
            busy = x[3] - x[1]; total = x[4] - x[2]
            all = (total > 0 ? busy / total * 100 * ncpu : 0)
            g = pct(gw); n = pct(na); l = pct(ld)
            other = all - (g == "n/a" ? 0 : g) - (n == "n/a" ? 0 : n) - (l == "n/a" ? 0 : l)
            printf "%s %s %s %.0f %.0f\n", g, n, l, all, (other < 0 ? 0 : other) }' \
    >"$TMP/$name.cpu"
  return "$rc"
}

# wrk duration strings (12.3us, 4.5ms, 1.2s, 1.0m) to milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v == "") { print ""; exit }
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : (u == "h") ? 3600000 : -1
    if (f < 0) { print ""; exit }
    printf "%.2f", n * f }'
}

# Parses a wrk output file into globals W_RPS W_P50 W_P99 W_NON2XX W_SOCKERR W_REQS.
parse_wrk() {
  local f=$1
  W_RPS=$(awk '/^Requests\/sec:/ { print $2 }' "$f")
  W_P50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$f")")
  W_P99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$f")")
  W_NON2XX=$(awk -F: '/Non-2xx or 3xx responses/ { gsub(/ /, "", $2); print $2 }' "$f")
  W_NON2XX=${W_NON2XX:-0}
  W_SOCKERR=$(awk '/Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' "$f")
  W_SOCKERR=${W_SOCKERR:-0}
  W_REQS=$(awk '/requests in/ { print $1 }' "$f")
}

json_field() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" "$1"; }

# a / b with 2 decimals, or "n/a".
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }
fmt_rps() { awk -v a="$1" 'BEGIN { if (a == "") print "n/a"; else printf "%.0f", a }'; }
or_na() { if [[ -n $1 ]]; then echo "$1"; else echo "n/a"; fi; }
mb() { awk -v k="$1" 'BEGIN { if (k == "") print ""; else printf "%.1f", k / 1024 }'; }
verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
  if (v == "" || v == "n/a") { print "n/a"; exit }
  ok = (op == ">=") ? (v + 0 >= t + 0) : (op == "<=") ? (v + 0 <= t + 0) : (v + 0 == t + 0)
  print ok ? "PASS" : "MISS" }'; }

# --- servers -----------------------------------------------------------------------------
cd "$TMP"  # anything a process writes to its working directory lands in the temp dir

NATS_PORT=$(free_port)
mkdir -p "$TMP/nats"
log "starting nats-server -js on 127.0.0.1:$NATS_PORT"
nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$TMP/nats" -l "$TMP/nats.log" &
NATS_PID=$!
wait_for 15 "$NATS_PID" port_open "$NATS_PORT" ||
  { tail -n 20 "$TMP/nats.log" >&2 2>/dev/null; die "nats-server did not start listening"; }

GW_PORT=$(free_port)
while [[ $GW_PORT == "$NATS_PORT" ]]; do GW_PORT=$(free_port); done
OMNIGATE_BENCH_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export OMNIGATE_BENCH_TOKEN
# The Telegram bot's secret_token (A-Z a-z 0-9 _ -, 1-256 characters): hex, random per run.
OMNIGATE_BENCH_TG_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export OMNIGATE_BENCH_TG_SECRET
export OMNIGATE_BENCH_PORT=$GW_PORT
export OMNIGATE_BENCH_NATS="nats://127.0.0.1:$NATS_PORT"
export OMNIGATE_BENCH_HTTP_THREADS=${OMNIGATE_BENCH_HTTP_THREADS:-$((CONN + 16 > 64 ? CONN + 16 : 64))}
log "starting omnigate on 127.0.0.1:$GW_PORT"
"$OMNIGATE" run --config "$BENCH_DIR/bench.yaml" >"$TMP/omnigate.log" 2>&1 &
GW_PID=$!
wait_for 30 "$GW_PID" ready ||
  { tail -n 20 "$TMP/omnigate.log" >&2; die "omnigate did not become ready (GET /readyz)"; }

# CPU the rest of the machine burns while we do nothing (other builds, tests...): it competes
# with every scenario, so it is reported next to the results.
m0=$(machine_ticks)
sleep 1
m1=$(machine_ticks)
BACKGROUND_CPU=$(awk -v m="$m0 $m1" -v ncpu="$NCPU" 'BEGIN { split(m, x, " ");
  printf "%.0f", (x[4] > x[2] ? (x[3] - x[1]) / (x[4] - x[2]) * 100 * ncpu : 0) }')

RSS_IDLE_KB=$(status_kb "$GW_PID" VmRSS)
THREADS_IDLE=$(status_kb "$GW_PID" Threads)
log "omnigate ready, idle RSS $(mb "$RSS_IDLE_KB") MB"

# --- scenarios ---------------------------------------------------------------------------
FAILED=()
URL="http://127.0.0.1:$GW_PORT"
wrk_cmd=(wrk "-t$WRK_THREADS" "-c$CONN" "-d${DURATION}s" --latency)

log "(a) no-op route: ${wrk_cmd[*]} -s bench/noop.lua"
run_load noop "${wrk_cmd[@]}" -s "$BENCH_DIR/noop.lua" "$URL" || FAILED+=("no-op: wrk exited nonzero")
parse_wrk "$TMP/noop.out"
NOOP_RPS=$W_RPS NOOP_P50=$W_P50 NOOP_P99=$W_P99 NOOP_NON2XX=$W_NON2XX NOOP_SOCKERR=$W_SOCKERR
[[ -n $NOOP_RPS ]] || FAILED+=("no-op: no wrk result")

log "(b) API channel: ${wrk_cmd[*]} -s bench/api_message.lua"
run_load api "${wrk_cmd[@]}" -s "$BENCH_DIR/api_message.lua" "$URL/" || FAILED+=("API: wrk exited nonzero")
parse_wrk "$TMP/api.out"
API_RPS=$W_RPS API_P50=$W_P50 API_P99=$W_P99 API_NON2XX=$W_NON2XX API_SOCKERR=$W_SOCKERR
API_REQS=$W_REQS
[[ -n $API_RPS ]] || FAILED+=("API: no wrk result")
# The gateway's own counters: every 202 of the API run should be one new published message.
curl -fsS --max-time 2 "$URL/metrics" >"$TMP/metrics.txt" 2>/dev/null || true
# Sum of the samples whose line starts with $1 (a metric name, optionally with labels), in $2.
metric_sum() { awk -v m="$1" 'index($0, m) == 1 { s += $NF; n++ } END { if (n) printf "%d", s }' "${2:-$TMP/metrics.txt}"; }
GW_PUBLISHED=$(metric_sum omnigate_interactions_published_total)
GW_DUPLICATES=$(metric_sum omnigate_duplicates_total)
GW_PUB_FAILURES=$(metric_sum omnigate_publish_failures_total)

# (d) first the no-op route with the Telegram request (same bytes, same wrk Lua work: its own
# ceiling, the webhook body and headers differ from the API's), then the webhook itself.
log "(d0) no-op route, Telegram request: ${wrk_cmd[*]} -s bench/noop_telegram.lua"
run_load tgnoop "${wrk_cmd[@]}" -s "$BENCH_DIR/noop_telegram.lua" "$URL" ||
  FAILED+=("no-op with the Telegram request: wrk exited nonzero")
parse_wrk "$TMP/tgnoop.out"
TGNOOP_RPS=$W_RPS TGNOOP_P50=$W_P50 TGNOOP_P99=$W_P99 TGNOOP_NON2XX=$W_NON2XX TGNOOP_SOCKERR=$W_SOCKERR
[[ -n $TGNOOP_RPS ]] || FAILED+=("no-op with the Telegram request: no wrk result")

log "(d) Telegram webhook: ${wrk_cmd[*]} -s bench/telegram_update.lua"
run_load tg "${wrk_cmd[@]}" -s "$BENCH_DIR/telegram_update.lua" "$URL" || FAILED+=("Telegram: wrk exited nonzero")
parse_wrk "$TMP/tg.out"
TG_RPS=$W_RPS TG_P50=$W_P50 TG_P99=$W_P99 TG_NON2XX=$W_NON2XX TG_SOCKERR=$W_SOCKERR
TG_REQS=$W_REQS
[[ -n $TG_RPS ]] || FAILED+=("Telegram: no wrk result")
curl -fsS --max-time 2 "$URL/metrics" >"$TMP/metrics-tg.txt" 2>/dev/null || true
TG_PUBLISHED=$(metric_sum 'omnigate_interactions_published_total{channel="telegram"' "$TMP/metrics-tg.txt")
TG_DUPLICATES=$(metric_sum 'omnigate_duplicates_total{channel="telegram"' "$TMP/metrics-tg.txt")
TG_REJECTED=$(metric_sum 'omnigate_rejected_total{channel="telegram"' "$TMP/metrics-tg.txt")
TG_IGNORED=$(metric_sum 'omnigate_ignored_events_total{channel="telegram"' "$TMP/metrics-tg.txt")
TG_PUB_FAILURES_ALL=$(metric_sum omnigate_publish_failures_total "$TMP/metrics-tg.txt")
TG_PUB_FAILURES=$(( ${TG_PUB_FAILURES_ALL:-0} - ${GW_PUB_FAILURES:-0} ))

log "(c) raw JetStream: jetstream_publish_bench --threads $CONN --seconds $DURATION"
run_load raw "$RAW_BENCH" --url "$OMNIGATE_BENCH_NATS" --threads "$CONN" --seconds "$DURATION" ||
  FAILED+=("raw JetStream: $(head -n 3 "$TMP/raw.err" | tr '\n' ' ')")
RAW_RPS=$(json_field "$TMP/raw.out" rps)
RAW_P50=$(json_field "$TMP/raw.out" p50_ms)
RAW_P99=$(json_field "$TMP/raw.out" p99_ms)
RAW_ERRORS=$(json_field "$TMP/raw.out" errors)
[[ -n $RAW_RPS ]] || FAILED+=("raw JetStream: no result")

RSS_LOAD_KB=$(status_kb "$GW_PID" VmRSS)
HWM_KB=$(status_kb "$GW_PID" VmHWM)
THREADS_LOAD=$(status_kb "$GW_PID" Threads)
GW_ALIVE=yes
kill -0 "$GW_PID" 2>/dev/null || GW_ALIVE=no

# --- report ------------------------------------------------------------------------------
read -r NOOP_CPU_GW NOOP_CPU_NATS NOOP_CPU_LOAD NOOP_CPU_ALL NOOP_CPU_OTHER <"$TMP/noop.cpu" || true
read -r API_CPU_GW API_CPU_NATS API_CPU_LOAD API_CPU_ALL API_CPU_OTHER <"$TMP/api.cpu" || true
read -r RAW_CPU_GW RAW_CPU_NATS RAW_CPU_LOAD RAW_CPU_ALL RAW_CPU_OTHER <"$TMP/raw.cpu" || true
read -r TGNOOP_CPU_GW TGNOOP_CPU_NATS TGNOOP_CPU_LOAD TGNOOP_CPU_ALL TGNOOP_CPU_OTHER <"$TMP/tgnoop.cpu" || true
read -r TG_CPU_GW TG_CPU_NATS TG_CPU_LOAD TG_CPU_ALL TG_CPU_OTHER <"$TMP/tg.cpu" || true

API_RATIO=$(ratio "$API_RPS" "$NOOP_RPS")
TG_RATIO=$(ratio "$TG_RPS" "$TGNOOP_RPS")
P99_NOTE=""
((CONN == 32)) || P99_NOTE=" (measured at $CONN connections; the target is defined at 32)"
GW_WARNINGS=$(grep -c . "$TMP/omnigate.log" || true)
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
REVISION=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
[[ -z $(git -C "$ROOT" status --porcelain 2>/dev/null | head -n 1) ]] || REVISION="$REVISION (uncommitted changes)"

REPORT="$TMP/report.md"
{
  echo "# omnigate benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "Revision $REVISION; $NCPU × ${CPU_MODEL:-unknown CPU}; $(nats-server --version 2>&1 | head -n 1);" \
    "wrk $WRK_THREADS threads × $CONN connections × ${DURATION} s; raw bench $CONN threads;" \
    "wrk, nats-server and omnigate share the machine."
  echo
  echo "| scenario | req/s | p50 ms | p99 ms | ratio to no-op | ratio to raw JetStream | non-2xx / socket errors |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  echo "| (a) no-op route \`POST /v1/noop\` | $(fmt_rps "$NOOP_RPS") | $(or_na "$NOOP_P50") | $(or_na "$NOOP_P99") | 1.00 | $(ratio "$NOOP_RPS" "$RAW_RPS") | $NOOP_NON2XX / $NOOP_SOCKERR |"
  echo "| (b) API channel \`POST /v1/api/bench\` | $(fmt_rps "$API_RPS") | $(or_na "$API_P50") | $(or_na "$API_P99") | $API_RATIO | $(ratio "$API_RPS" "$RAW_RPS") | $API_NON2XX / $API_SOCKERR |"
  echo "| (d0) no-op route, Telegram request \`POST /v1/noop\` | $(fmt_rps "$TGNOOP_RPS") | $(or_na "$TGNOOP_P50") | $(or_na "$TGNOOP_P99") | 1.00 | $(ratio "$TGNOOP_RPS" "$RAW_RPS") | $TGNOOP_NON2XX / $TGNOOP_SOCKERR |"
  echo "| (d) Telegram webhook \`POST /v1/telegram/benchbot\` | $(fmt_rps "$TG_RPS") | $(or_na "$TG_P50") | $(or_na "$TG_P99") | $TG_RATIO | $(ratio "$TG_RPS" "$RAW_RPS") | $TG_NON2XX / $TG_SOCKERR |"
  echo "| (c) raw JetStream sync publish (nats.c) | $(fmt_rps "$RAW_RPS") | $(or_na "$RAW_P50") | $(or_na "$RAW_P99") | $(ratio "$RAW_RPS" "$NOOP_RPS") | 1.00 | $(or_na "$RAW_ERRORS") failed publishes |"
  echo
  echo "omnigate RSS: idle $(mb "$RSS_IDLE_KB") MB ($THREADS_IDLE threads); after load $(mb "$RSS_LOAD_KB") MB," \
    "peak (VmHWM) $(mb "$HWM_KB") MB ($THREADS_LOAD threads)."
  echo
  echo "CPU during the middle of each run (% of one core; the machine has $((NCPU * 100))%):"
  echo
  echo "| scenario | omnigate | nats-server | load generator | other processes | whole machine |"
  echo "|---|---:|---:|---:|---:|---:|"
  echo "| idle, before the runs | – | – | – | $BACKGROUND_CPU | $BACKGROUND_CPU |"
  echo "| (a) no-op | ${NOOP_CPU_GW:-n/a} | ${NOOP_CPU_NATS:-n/a} | ${NOOP_CPU_LOAD:-n/a} (wrk) | ${NOOP_CPU_OTHER:-n/a} | ${NOOP_CPU_ALL:-n/a} |"
  echo "| (b) API | ${API_CPU_GW:-n/a} | ${API_CPU_NATS:-n/a} | ${API_CPU_LOAD:-n/a} (wrk) | ${API_CPU_OTHER:-n/a} | ${API_CPU_ALL:-n/a} |"
  echo "| (d0) no-op, Telegram request | ${TGNOOP_CPU_GW:-n/a} | ${TGNOOP_CPU_NATS:-n/a} | ${TGNOOP_CPU_LOAD:-n/a} (wrk) | ${TGNOOP_CPU_OTHER:-n/a} | ${TGNOOP_CPU_ALL:-n/a} |"
  echo "| (d) Telegram | ${TG_CPU_GW:-n/a} | ${TG_CPU_NATS:-n/a} | ${TG_CPU_LOAD:-n/a} (wrk) | ${TG_CPU_OTHER:-n/a} | ${TG_CPU_ALL:-n/a} |"
  echo "| (c) raw JetStream | ${RAW_CPU_GW:-n/a} | ${RAW_CPU_NATS:-n/a} | ${RAW_CPU_LOAD:-n/a} (bench) | ${RAW_CPU_OTHER:-n/a} | ${RAW_CPU_ALL:-n/a} |"
  echo
  echo "| target | measured | verdict |"
  echo "|---|---:|---|"
  echo "| API ≥ 50% of no-op req/s | $API_RATIO | $(verdict "$API_RATIO" ">=" "$TARGET_RATIO") |"
  echo "| API p99 ≤ ${TARGET_P99_MS} ms at 32 connections$P99_NOTE | $(or_na "$API_P99") ms | $(verdict "$API_P99" "<=" "$TARGET_P99_MS") |"
  echo "| Telegram ≥ 50% of no-op req/s (d / d0) | $TG_RATIO | $(verdict "$TG_RATIO" ">=" "$TARGET_RATIO") |"
  echo "| Telegram p99 ≤ ${TARGET_P99_MS} ms at 32 connections$P99_NOTE | $(or_na "$TG_P99") ms | $(verdict "$TG_P99" "<=" "$TARGET_P99_MS") |"
  echo "| RSS idle ≤ ${TARGET_RSS_IDLE_MB} MB | $(mb "$RSS_IDLE_KB") MB | $(verdict "$(mb "$RSS_IDLE_KB")" "<=" "$TARGET_RSS_IDLE_MB") |"
  echo "| RSS under load (VmHWM) ≤ ${TARGET_RSS_LOAD_MB} MB | $(mb "$HWM_KB") MB | $(verdict "$(mb "$HWM_KB")" "<=" "$TARGET_RSS_LOAD_MB") |"
  echo "| API non-2xx responses = 0 | $API_NON2XX of $(or_na "$API_REQS") | $(verdict "$API_NON2XX" "==" 0) |"
  echo "| Telegram non-2xx responses = 0 | $TG_NON2XX of $(or_na "$TG_REQS") | $(verdict "$TG_NON2XX" "==" 0) |"
  echo
  notes=()
  busy_others=$(awk -v list="${NOOP_CPU_OTHER:-0} ${API_CPU_OTHER:-0} ${TGNOOP_CPU_OTHER:-0} ${TG_CPU_OTHER:-0} ${RAW_CPU_OTHER:-0} $BACKGROUND_CPU" \
    'BEGIN { n = split(list, v, " "); m = 0; for (i = 1; i <= n; i++) if (v[i] + 0 > m) m = v[i] + 0; print m }')
  ((busy_others < 20)) || notes+=("other processes used up to ${busy_others}% CPU during the run: the machine was not quiet, numbers are pessimistic and noisy — rerun on an idle machine")
  ((API_SOCKERR == 0)) || notes+=("API run: $API_SOCKERR socket errors (connect/read/write/timeout), see wrk's line: $(grep 'Socket errors' "$TMP/api.out" | sed 's/^ *//')")
  ((NOOP_NON2XX == 0 && NOOP_SOCKERR == 0)) || notes+=("no-op run: $NOOP_NON2XX non-2xx, $NOOP_SOCKERR socket errors — the ratio is not meaningful")
  ((TG_SOCKERR == 0)) || notes+=("Telegram run: $TG_SOCKERR socket errors (connect/read/write/timeout), see wrk's line: $(grep 'Socket errors' "$TMP/tg.out" | sed 's/^ *//')")
  ((TGNOOP_NON2XX == 0 && TGNOOP_SOCKERR == 0)) || notes+=("no-op run with the Telegram request: $TGNOOP_NON2XX non-2xx, $TGNOOP_SOCKERR socket errors — the Telegram ratio is not meaningful")
  [[ -z $GW_PUBLISHED ]] || notes+=("omnigate /metrics: $GW_PUBLISHED interactions published, ${GW_DUPLICATES:-0} duplicates, ${GW_PUB_FAILURES:-0} publish failures (wrk counted $(or_na "$API_REQS") API responses).")
  [[ -z $TG_PUBLISHED$TG_REJECTED ]] || notes+=("omnigate /metrics, Telegram: ${TG_PUBLISHED:-0} updates published, ${TG_DUPLICATES:-0} duplicates, ${TG_REJECTED:-0} rejected, ${TG_IGNORED:-0} ignored, $TG_PUB_FAILURES publish failures during (d) (wrk counted $(or_na "$TG_REQS") Telegram responses).")
  notes+=("Telegram against the API's no-op run (a) instead of its own (d0): $(ratio "$TG_RPS" "$NOOP_RPS"); Telegram against the API channel (b): $(ratio "$TG_RPS" "$API_RPS").")
  [[ $GW_ALIVE == yes ]] || notes+=("omnigate was no longer running after the scenarios")
  ((GW_WARNINGS == 0)) || notes+=("omnigate logged $GW_WARNINGS lines at warn level or above; first: \`$(head -n 1 "$TMP/omnigate.log" | cut -c1-200)\`")
  for f in "${FAILED[@]}"; do notes+=("FAILED: $f"); done
  for n in "${notes[@]}"; do echo "- $n"; done
  ((${#notes[@]} == 0)) || echo
  echo "Targets: PASS/MISS is a report, not a gate. See bench/README.md for how to read this."
} >"$REPORT"

mkdir -p "$BENCH_DIR/results"
cp "$REPORT" "$BENCH_DIR/results/latest.md"
cat "$REPORT"
log "report written to bench/results/latest.md"
((${#FAILED[@]} == 0))
