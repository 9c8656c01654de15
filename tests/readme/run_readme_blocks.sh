#!/usr/bin/env bash
# The README's runnable commands, verbatim, in "a new terminal after `make run`":
#   1. a throw-away copy of the checkout (symlinks to bin/, config/, scripts/, tests/, the build
#      directory) where scripts/run-local.sh -- what `make run` runs -- generates var/dev.env
#      and starts nats-server and omnigate;
#   2. every ```sh block of README.md and connectors/*/README.md preceded by
#      `<!-- test: run -->` runs with bash -e in that directory, in order in one shell whose
#      environment is as bare as a new terminal's (PATH, HOME): no dev secret is exported. The one change to the text: the ports 8080 and 4222 become the
#      free ports this run uses (passed to the config as OMNIGATE_HTTP_PORT/OMNIGATE_NATS_URL);
#   3. Ctrl-C (SIGINT to its process group), then a second start and a SIGTERM to the script:
#      each must exit 0, omnigate must log "stopped" and no NATS warning, and the banner must
#      come after omnigate's "listening on" line.
# usage: run_readme_blocks.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
source_dir="$1"
build_dir="$2"
work="$(mktemp -d)"
run_pid=""
finish() {
  if [ -n "$run_pid" ] && kill -0 "$run_pid" 2>/dev/null; then kill -TERM "$run_pid" || true; wait "$run_pid" || true; fi
  rm -rf "$work"
}
trap finish EXIT
fail() { echo "FAIL: $*" >&2; echo "--- make run's output:" >&2; cat "$work/run.log" >&2 || true; exit 1; }

# A port nothing listens on now (bash alone: no python in the package list), below Linux's
# ephemeral range (32768-60999): there a parallel test's outgoing connection can take the port
# between this check and the bind ("Address already in use").
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 12000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
  done
}
http_port="$(free_port)"
nats_port="$(free_port)"
smtp_port="$(free_port)"

for entry in bin config connectors scripts tests README.md; do ln -s "$source_dir/$entry" "$work/$entry"; done
ln -s "$build_dir" "$work/build"

cd "$work"
export OMNIGATE_HTTP_PORT="$http_port" OMNIGATE_NATS_URL="nats://127.0.0.1:$nats_port"
export OMNIGATE_SMTP_URL="smtp://127.0.0.1:$smtp_port"
# `make run`'s script in its own process group, as a terminal's foreground job is.
start_run() {
  : >"$work/run.log"
  setsid scripts/run-local.sh build/omnigate config/omnigate.example.yaml >"$work/run.log" 2>&1 &
  run_pid=$!
  for _ in $(seq 1 300); do
    grep -q "omnigate listens on" "$work/run.log" && break
    kill -0 "$run_pid" 2>/dev/null || fail "make run's script exited before its banner"
    sleep 0.1
  done
  grep -q "omnigate listens on" "$work/run.log" || fail "no banner within 30 s"
  listening_line="$(grep -n "listening on" "$work/run.log" | head -1 | cut -d: -f1)"
  banner_line="$(grep -n "omnigate listens on" "$work/run.log" | head -1 | cut -d: -f1)"
  [ -n "$listening_line" ] && [ "$listening_line" -lt "$banner_line" ] ||
    fail "the banner came before omnigate's 'listening on' line"
}
# Stops it with `kill_args` (-INT -- -<group>: Ctrl-C; -TERM <pid>: a SIGTERM to the script):
# exit 0 (make would report "Error <status>" otherwise), a "stopped" line, no warning.
stop_run() {
  local how="$1"
  shift
  kill "$@"
  local status=0
  wait "$run_pid" || status=$?
  run_pid=""
  [ "$status" -eq 0 ] || fail "make run's script exited $status on $how (make: Error $status)"
  grep -q "main: stopped" "$work/run.log" || fail "no 'stopped' line after $how"
  if grep -E " (warn|error) " "$work/run.log"; then fail "a warning or error was logged ($how)"; fi
}

start_run

# The blocks: the line after a `<!-- test: run -->` marker opens ```sh, the block ends at ```.
# They run in order in one shell, as a reader follows the docs in one terminal: README.md
# first (its `export PATH=$PWD/bin:$PATH` holds for the connector READMEs' blocks after it).
script="$work/readme-blocks.sh"
for doc in README.md connectors/*/README.md; do
  awk -v doc="$doc" '
    /<!-- test: run -->/ { armed = 1; next }
    armed && /^```sh$/ { inside = 1; armed = 0; n++; print "echo \"--- " doc " block " n "\""; next }
    inside && /^```$/ { inside = 0; next }
    inside { print }
    !inside && !/^[[:space:]]*$/ { armed = 0 }
  ' "$doc" >>"$script"
done
count="$(grep -c '^echo "--- ' "$script" || true)"
[ "$count" -ge 1 ] || fail "no README block is marked <!-- test: run -->"
sed -i "s/127\.0\.0\.1:8080/127.0.0.1:$http_port/g; s/127\.0\.0\.1:4222/127.0.0.1:$nats_port/g" "$script"
echo "--- the README blocks, as run:"
cat "$script"
echo "--- their output:"
if ! env -i HOME="$HOME" PATH=/usr/local/bin:/usr/bin:/bin \
       OMNIGATE_HTTP_PORT="$http_port" OMNIGATE_NATS_URL="nats://127.0.0.1:$nats_port" \
       OMNIGATE_SMTP_URL="$OMNIGATE_SMTP_URL" timeout 40 bash -e "$script"; then
  fail "a README block failed (the last '--- ... block N' line above names it)"
fi

stop_run "Ctrl-C" -INT -- "-$run_pid"
dev_env="$(cat var/dev.env)"
start_run  # again: the secrets are generated once, the spool and stream are reused
[ "$(cat var/dev.env)" = "$dev_env" ] || fail "a second make run changed var/dev.env"
stop_run "SIGTERM" -TERM "$run_pid"
echo "ok: $count README block(s); clean stops on Ctrl-C and SIGTERM"
