#!/usr/bin/env bash
# Instructions per call of a channel's mapping, counted by callgrind: the figure to compare two
# builds of a parser by on a host whose timings move by 2x between runs minutes apart (see
# bench/README.md). Counts only the mapping function (telegram::parse_update, vk::parse_callback)
# and what it calls: no serialize, no benchmark loop. Deterministic to a few parts in 10^4.
#
#   bench/mapping_instructions.sh vk [mapping_bench binary] [fixtures dir]
#
# With a fixtures directory holding one file, the figure is for that body alone. Needs valgrind
# (Debian `valgrind`), which nothing else in the project uses, so it is not in
# scripts/debian-packages.txt.
set -euo pipefail

die() { echo "mapping_instructions: $*" >&2; exit 2; }

CHANNEL=${1:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${2:-$ROOT/build/mapping_bench}
case $CHANNEL in
  telegram) FUNCTION='omnigate::telegram::parse_update*' ;;
  vk) FUNCTION='omnigate::vk::parse_callback*' ;;
  *) die "usage: bench/mapping_instructions.sh telegram|vk [mapping_bench binary] [fixtures dir]" ;;
esac
FIXTURES=${3:-$ROOT/connectors/$CHANNEL/fixtures}
command -v valgrind >/dev/null || die "valgrind is not installed (apt-get install valgrind)"
[ -x "$BENCH" ] || die "$BENCH is not built (cmake --build build --target mapping_bench)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/omnigate-instructions.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
# 2000 rounds: enough calls that the one-off costs (the first parse grows the parser) vanish.
valgrind --tool=callgrind --callgrind-out-file="$TMP/callgrind.out" --collect-atstart=no \
  "--toggle-collect=$FUNCTION" "$BENCH" "$CHANNEL" "$FIXTURES" 2000 >"$TMP/bench.out" \
  2>"$TMP/valgrind.err" || { tail -n 5 "$TMP/valgrind.err" >&2; die "mapping_bench failed under valgrind"; }
INSTRUCTIONS=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$TMP/valgrind.err")
CALLS=$(sed -n 's/.*"calls":\([0-9]*\).*/\1/p' "$TMP/bench.out" | awk '{ n += $1 } END { print n + 0 }')
BODIES=$(find "$FIXTURES" -maxdepth 1 -name '*.json' ! -name cases.json | wc -l)
[ -n "$INSTRUCTIONS" ] && ((CALLS > 0)) || die "no count from callgrind or mapping_bench"
awk -v i="$INSTRUCTIONS" -v c="$CALLS" -v ch="$CHANNEL" -v b="$BODIES" 'BEGIN {
  printf "{\"channel\":\"%s\",\"bodies\":%d,\"calls\":%d,\"instructions\":%d,\"per_call\":%.0f}\n", ch, b, c, i, i / c
}'
