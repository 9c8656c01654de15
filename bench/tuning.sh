#!/usr/bin/env bash
# Measures what each cpp-httplib / omnigate tuning buys: bench/run.sh once per variant (its own
# nats-server and omnigate each time), then one table. Every variant changes one setting from
# omnigate's defaults (64 threads, TCP_NODELAY on, 100000 requests per keep-alive connection,
# dedup record on).
#
#   bench/tuning.sh                 # BENCH_SECONDS=5 per scenario
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BENCH_SECONDS=${BENCH_SECONDS:-5}
# What it tunes is cpp-httplib's server (http.server: threads), not the default event-loop front.
export OMNIGATE_BENCH_HTTP_SERVER=${OMNIGATE_BENCH_HTTP_SERVER:-threads}
out="$ROOT/bench/results"
mkdir -p "$out"

variants=(
  "defaults|"
  "TCP_NODELAY off|OMNIGATE_BENCH_TCP_NODELAY=false"
  "keep-alive max 5 requests (cpp-httplib default)|OMNIGATE_BENCH_KEEP_ALIVE_MAX=5"
  "8 worker threads (cpp-httplib default on 2 cores)|OMNIGATE_BENCH_HTTP_THREADS=8"
  "32 worker threads|OMNIGATE_BENCH_HTTP_THREADS=32"
  "128 worker threads|OMNIGATE_BENCH_HTTP_THREADS=128"
  "dedup record off (dedup_horizon: 0)|OMNIGATE_BENCH_DEDUP_HORIZON=0"
)

# Pulls req/s and p99 of one scenario row out of a run.sh report.
row() { awk -F'|' -v s="$2" 'index($2, s) { gsub(/ /, "", $3); gsub(/ /, "", $5); print $3, $5 }' "$1"; }

table="| variant | no-op req/s | no-op p99 ms | API req/s | API p99 ms |\n|---|---:|---:|---:|---:|\n"
for v in "${variants[@]}"; do
  name=${v%%|*}
  setting=${v#*|}
  echo "tuning: $name" >&2
  env $setting "$ROOT/bench/run.sh" >/dev/null
  read -r noop_rps noop_p99 < <(row "$out/latest.md" "(a) no-op")
  read -r api_rps api_p99 < <(row "$out/latest.md" "(b) API")
  table+="| $name | $noop_rps | $noop_p99 | $api_rps | $api_p99 |\n"
done
printf "%b" "$table" | tee "$out/tuning.md"
