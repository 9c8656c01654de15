#!/usr/bin/env bash
# Same-minute rounds of bench/ab.sh: every variant once per round, the rounds one after the
# other, so that a host's drifting noise falls on all variants alike; prints one markdown table
# (a row per variant, the rounds' values side by side) -- the tables of
# bench/results/issue14-probe.md were made this way.
#
#   bench/ab_matrix.sh 2 'omnigate|build/omnigate' \
#     'probe loop|build/epoll_probe|PROBE_NATS_LOOP=1 PROBE_INLINE_FREE=1' \
#     'node|bench/peers/node/server.mjs'
#
# A variant is "label|binary[|NAME=value ...]" (the values go to the binary's environment, as
# ab.sh's extra arguments). AB_SECONDS (8) and AB_CHANNEL pass through to ab.sh; the counts
# (syscalls, futex calls, context switches per interaction) come from its AB_COUNT=1.
set -euo pipefail
[[ $# -ge 2 && $1 =~ ^[1-9][0-9]*$ ]] ||
  { echo "usage: bench/ab_matrix.sh <rounds> 'label|binary[|NAME=value ...]' ..." >&2; exit 2; }
ROUNDS=$1
shift
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$(mktemp -d "${TMPDIR:-/tmp}/omnigate-abm.XXXXXX")
trap 'rm -rf "$OUT"' EXIT
variants=("$@")
for ((round = 1; round <= ROUNDS; round++)); do
  for i in "${!variants[@]}"; do
    IFS='|' read -r label binary envs <<<"${variants[$i]}"
    echo "round $round/$ROUNDS: $label" >&2
    # shellcheck disable=SC2086 # envs is a list of NAME=value words
    if ! AB_COUNT=1 "$ROOT/bench/ab.sh" "$binary" $envs >"$OUT/$i.$round" 2>&1; then
      tail -n 3 "$OUT/$i.$round" >&2
      echo "bench/ab.sh failed for '$label' in round $round" >&2
      exit 1
    fi
  done
done
echo "| variant | req/s | p99 | µs per interaction | nats-server µs | syscalls | futex | context switches |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for i in "${!variants[@]}"; do
  IFS='|' read -r label _ <<<"${variants[$i]}"
  for ((round = 1; round <= ROUNDS; round++)); do cat "$OUT/$i.$round"; echo "@@"; done |
    awk -v label="$label" '
      function add(k, v) { row[k] = row[k] == "" ? v : row[k] " · " v }
      /^per interaction:/ { sc = $3; fx = $5; sub(/\(/, "", fx); cs = $7 }
      /^req\/s/ { add("rps", int($2 + 0.5)); add("p99", $4);
                  for (f = 1; f <= NF; f++) {
                    if ($f == "omnigate") add("cpu", $(f + 1))
                    if ($f == "nats-server") add("nats", $(f + 1)) } }
      /^@@/ { add("sc", sc == "" ? "–" : sc); add("fx", fx == "" ? "–" : fx);
              add("cs", cs == "" ? "–" : cs); sc = fx = cs = "" }
      END { printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", label, row["rps"], row["p99"],
                   row["cpu"], row["nats"], row["sc"], row["fx"], row["cs"] }'
done
