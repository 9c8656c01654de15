#!/usr/bin/env bash
# The fault suite, longer: the scenarios of tests/faults (the real omnigate binary and
# nats-servers killed and stopped under load) with more requests and more kills, one case at a
# time, then a table per scenario: requests, 2xx, lost 2xx, duplicates, the longest
# unavailability, and whether the case passed.
#
#   bench/faults.sh                 scale 5 (OMNIGATE_FAULTS_SCALE), every [faults] case
#   bench/faults.sh "[cluster]"     only the cases matching a Catch test spec
#
# Builds nothing: it expects build/ (make build, or cmake --build build --target fault_tests).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
export OMNIGATE_FAULTS_SCALE=${OMNIGATE_FAULTS_SCALE:-5}
binary=$BUILD_DIR/tests/fault_tests
if [[ ! -x $binary ]]; then
  echo "bench/faults.sh: $binary is missing; build it first: cmake --build $BUILD_DIR --target fault_tests" >&2
  exit 2
fi
spec=${1:-[faults]}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMNIGATE_FAULTS_REPORT=$work/figures.tsv
: >"$OMNIGATE_FAULTS_REPORT"
mapfile -t cases < <("$binary" --list-test-names-only "$spec" | sed '/^$/d')
echo "fault scenarios at scale $OMNIGATE_FAULTS_SCALE on $(nproc) cores: ${#cases[@]} cases"
failed=0
: >"$work/results.tsv"
for name in "${cases[@]}"; do
  lines_before=$(wc -l <"$OMNIGATE_FAULTS_REPORT")
  start=$(date +%s)
  # A test spec: commas, brackets and backslashes in a name are escaped.
  spec_of_name=$(printf %s "$name" | sed 's/[],[\\]/\\&/g')
  if "$binary" "$spec_of_name" >"$work/case.log" 2>&1; then result=pass; else result=FAIL; failed=$((failed + 1)); fi
  seconds=$(($(date +%s) - start))
  # A case that fails before its check records no figures: show why.
  if [[ $(wc -l <"$OMNIGATE_FAULTS_REPORT") -eq $lines_before ]]; then
    printf '%s\t-\t-\t-\t-\t-\n' "$name" >>"$OMNIGATE_FAULTS_REPORT"
  fi
  tail -n +$((lines_before + 1)) "$OMNIGATE_FAULTS_REPORT" | while IFS= read -r line; do
    printf '%s\t%s\t%ss\n' "$line" "$result" "$seconds" >>"$work/results.tsv"
  done
  if [[ $result == FAIL ]]; then
    echo "--- FAIL: $name"
    grep -E 'FAILED|REQUIRE|CHECK|with expansion|^  ' "$work/case.log" | grep -vE '^ *$|^ {10,}' | head -n 30
  fi
done
echo
{
  printf 'scenario\trequests\t2xx\tlost 2xx\tduplicates\tlongest unavailability (ms)\tresult\ttime\n'
  cat "$work/results.tsv"
} | column -t -s $'\t'
exit $((failed > 0))
