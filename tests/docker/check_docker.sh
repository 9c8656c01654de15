#!/usr/bin/env bash
# What can be checked of the Docker setup without a Docker engine (this machine and CI have the
# docker CLI at most, no daemon: no image is built or run here).
#   check_docker.sh static SOURCE_DIR
#       compose.yaml by compose itself (docker compose / docker-compose config, with no variable
#       set) and structurally (check_compose.py: services, healthchecks, depends_on, restart,
#       volumes, the dev secrets passed through); .dockerignore; the Dockerfile's COPY sources.
#   check_docker.sh entrypoint SOURCE_DIR OMNIGATE_BINARY
#       docker/entrypoint.sh outside Docker with a temp dir: it generates the dev secrets once
#       (dev-secrets.sh), keeps them across starts, lets a non-empty environment variable win,
#       and execs the binary: check-config of the image's config passes with them, and fails
#       (exit 2, the status compose's restart cap is for) without them. Then `run` with the
#       environment compose gives the container, against a local nats-server started as the
#       compose service is (-js -m), until the image's HEALTHCHECK URL /readyz answers 200.
#   check_docker.sh build SOURCE_DIR WORK_DIR
#       the Dockerfile's build-stage RUN lines between "# check_docker: build commands begin"
#       and "... end", exactly as written, in a clean copy of the checkout (the files git tracks
#       or would track: no build/, var/, node_modules or .git, as a fresh clone has them).
#       The apt-get line before them is skipped: it installs the build section of
#       scripts/debian-packages.txt, which install-deps.sh already installed here.
set -euo pipefail
mode="$1"
source_dir="$(cd "$2" && pwd)"
here="$(cd "$(dirname "$0")" && pwd)"
fail() { echo "FAIL: $*" >&2; exit 1; }
# Debian's python3: python3-yaml and python3-docker come with docker-compose
# (scripts/debian-packages.txt), whatever other python3 is first on PATH.
python="${OMNIGATE_PYTHON:-/usr/bin/python3}"

# A port nothing listens on now (the kernel's choice for port 0).
free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Every NAME the one list of dev secrets generates.
dev_secret_names() { sed -n 's/^add \([A-Z_][A-Z0-9_]*\) [0-9]*$/\1/p' "$source_dir/scripts/dev-secrets.sh"; }

check_static() {
  local compose="$source_dir/docker/compose.yaml"
  # Compose's own parser and schema, in an environment with no variable set: `up` must need none.
  local validated=""
  if docker compose version >/dev/null 2>&1; then
    env -i PATH="$PATH" HOME="${HOME:-/tmp}" docker compose -f "$compose" config -q \
      || fail "docker compose config rejects docker/compose.yaml"
    env -i PATH="$PATH" HOME="${HOME:-/tmp}" docker compose -f "$compose" --profile observability config -q \
      || fail "docker compose config rejects the observability profile"
    validated="docker compose"
  elif command -v docker-compose >/dev/null 2>&1; then
    env -i PATH="$PATH" HOME="${HOME:-/tmp}" docker-compose -f "$compose" config -q \
      || fail "docker-compose config rejects docker/compose.yaml"
    env -i PATH="$PATH" HOME="${HOME:-/tmp}" docker-compose -f "$compose" --profile observability config -q \
      || fail "docker-compose config rejects the observability profile"
    validated="docker-compose"
  else
    fail "neither \`docker compose\` nor docker-compose is installed (scripts/debian-packages.txt lists docker-compose)"
  fi
  echo "compose.yaml: valid for $validated with no variable set"

  local names
  mapfile -t names < <(dev_secret_names)
  "$python" "$here/check_compose.py" "$source_dir" "${names[@]}"

  # .dockerignore: what `make run` and `make test` leave in the checkout stays out of the context.
  local ignore="$source_dir/.dockerignore"
  [ -f "$ignore" ] || fail ".dockerignore is missing at the repository root"
  # As Docker reads it (docker-py's matcher, which docker-compose builds with), on a checkout
  # after `make run` and `make test` in miniature.
  "$python" - "$ignore" <<'PY' || fail ".dockerignore lets a leftover of make run into the build context"
import os, sys, tempfile
from docker.utils.build import exclude_paths
leftovers = ["build/CMakeCache.txt", "build/omnigate", "var/dev.env", "var/spool.db", "var/mail/0001.eml",
             "var/nats/jetstream/stream.dat", "tests/browser/node_modules/mailparser/index.js",
             "tests/schema/node_modules/ajv/package.json", "node_modules/x/index.js", "bench/results/raw.csv",
             "tests/tmp/state.db", ".git/config"]
sources = ["docker/Dockerfile", "gateway/app/main.cpp", "tests/browser/package-lock.json", "bench/results/latest.md",
           "scripts/dev-secrets.sh", ".gitignore"]
with tempfile.TemporaryDirectory() as root:
    for path in leftovers + sources:
        os.makedirs(os.path.join(root, os.path.dirname(path)), exist_ok=True)
        open(os.path.join(root, path), "w").close()
    patterns = [l.strip() for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")]
    context = exclude_paths(root, patterns, dockerfile="docker/Dockerfile")
bad = [p for p in leftovers if p in context]
lost = [p for p in sources if p not in context]
for p in bad:
    print(f"FAIL: {p} is in the build context", file=sys.stderr)
for p in lost:
    print(f"FAIL: {p} is left out of the build context", file=sys.stderr)
sys.exit(1 if bad or lost else 0)
PY
  echo ".dockerignore: excludes .git build/ var/ node_modules *.db (checked with Docker's matcher)"

  # Every file the Dockerfile COPYs from the context is in the repository and not ignored.
  local src
  while read -r src; do
    [ -e "$source_dir/$src" ] || fail "docker/Dockerfile copies $src, which is not in the repository"
    case "$src" in build/* | var/* | *node_modules*) fail "docker/Dockerfile copies $src, an ignored path" ;; esac
  done < <(awk '$1 == "COPY" && $2 !~ /^--from/ { for (i = 2; i < NF; i++) print $i }' "$source_dir/docker/Dockerfile" | grep -vx '\.')
  echo "Dockerfile: every COPY source exists"
}

check_entrypoint() {
  local binary
  binary="$(realpath "$3")"
  local entrypoint="$source_dir/docker/entrypoint.sh"
  # Globals, not locals: the EXIT trap runs after this function has returned.
  work="$(mktemp -d)"
  nats_pid="" gateway_pid=""
  cleanup() {
    if [ -n "$gateway_pid" ]; then kill -TERM "$gateway_pid" 2>/dev/null || true; wait "$gateway_pid" 2>/dev/null || true; fi
    if [ -n "$nats_pid" ]; then kill "$nats_pid" 2>/dev/null || true; wait "$nats_pid" 2>/dev/null || true; fi
    rm -rf "$work"
  }
  trap cleanup EXIT

  sh -n "$entrypoint" || fail "docker/entrypoint.sh: syntax error"
  sh -n "$source_dir/scripts/dev-secrets.sh" || fail "scripts/dev-secrets.sh: syntax error"

  # The list covers every secret the example config needs: each ${VAR} without a default.
  local needed name
  needed="$(grep -v '^ *#' "$source_dir/config/omnigate.example.yaml" | grep -o '\${[A-Z_][A-Z0-9_]*}' | tr -d '${}' | sort -u)"
  for name in $needed; do
    dev_secret_names | grep -qx "$name" || fail "scripts/dev-secrets.sh does not generate $name, which config/omnigate.example.yaml needs"
  done

  # As the image runs it: a bare environment, the secrets file in a volume that does not exist yet.
  local secrets="$work/volume/secrets/dev.env"
  container_env() {
    env -i PATH=/usr/bin:/bin OMNIGATE_BINARY="$1" OMNIGATE_DEV_SECRETS_SCRIPT="$source_dir/scripts/dev-secrets.sh" \
      OMNIGATE_DEV_SECRETS="$secrets" "${@:2}"
  }
  # compose passes every secret through, empty unless set on the host: empty = take the file's.
  local passthrough=()
  for name in $(dev_secret_names); do passthrough+=("$name="); done

  container_env /usr/bin/env "${passthrough[@]}" OMNIGATE_API_TOKEN=from-the-environment-123456 \
    "$entrypoint" >"$work/env.out" || fail "the entrypoint did not exec its binary"
  [ -f "$secrets" ] || fail "the entrypoint did not generate $secrets"
  [ "$(stat -c %a "$secrets")" = 600 ] || fail "$secrets is not mode 600"
  for name in $(dev_secret_names); do
    grep -q "^$name=[0-9a-f]\{32,\}$" "$secrets" || fail "$secrets has no generated $name"
  done
  grep -qx 'OMNIGATE_API_TOKEN=from-the-environment-123456' "$work/env.out" \
    || fail "a secret set in the environment did not win over the generated one"
  local consent_key
  consent_key="$(grep '^OMNIGATE_CONSENT_KEY=' "$secrets")"
  grep -qxF "$consent_key" "$work/env.out" || fail "an empty variable did not fall back to the generated secret"
  cp "$secrets" "$work/first.env"

  # The image's config, with the generated secrets: valid (so `up` starts), and unchanged secrets.
  container_env "$binary" "${passthrough[@]}" "$entrypoint" check-config "$source_dir/config/omnigate.example.yaml" \
    || fail "check-config of the image's config fails with the generated secrets"
  cmp -s "$secrets" "$work/first.env" || fail "a second start changed the generated secrets"
  # Without them it is a config error, exit 2: what restart: on-failure:3 stops retrying.
  local status=0
  env -i PATH=/usr/bin:/bin OMNIGATE_BINARY="$binary" OMNIGATE_DEV_SECRETS=off \
    "$entrypoint" check-config "$source_dir/config/omnigate.example.yaml" >/dev/null 2>&1 || status=$?
  [ "$status" = 2 ] || fail "check-config without secrets exited $status, not 2"
  echo "entrypoint: generated $(dev_secret_names | wc -l) secrets once, environment wins, check-config ok"

  # `run` as the container does (the example config, compose's environment), NATS as the compose
  # service starts it (-js -m), until both healthchecks' URLs answer 200.
  local nats_port monitor_port http_port
  nats_port="$(free_port)"; monitor_port="$(free_port)"; http_port="$(free_port)"
  nats-server -js -sd "$work/nats" -a 127.0.0.1 -p "$nats_port" -m "$monitor_port" >"$work/nats.log" 2>&1 &
  nats_pid=$!
  local nats_health readyz
  nats_health="$("$python" "$here/check_compose.py" --print-nats-health-path "$source_dir")"
  readyz="$(sed -n 's|.*curl -fsS -o /dev/null "http://127.0.0.1:${OMNIGATE_HTTP_PORT:-8080}\(/[a-z]*\)".*|\1|p' "$source_dir/docker/Dockerfile")"
  [ "$readyz" = /readyz ] || fail "the Dockerfile's HEALTHCHECK does not probe /readyz"
  mkdir -p "$work/workdir"
  # exec: the SIGTERM below reaches the entrypoint's process, which is omnigate by then.
  (cd "$work/workdir" && exec env -i PATH=/usr/bin:/bin OMNIGATE_BINARY="$binary" \
    OMNIGATE_DEV_SECRETS_SCRIPT="$source_dir/scripts/dev-secrets.sh" OMNIGATE_DEV_SECRETS="$secrets" \
    "${passthrough[@]}" OMNIGATE_HTTP_ADDRESS=127.0.0.1 \
    OMNIGATE_HTTP_PORT="$http_port" OMNIGATE_NATS_URL="nats://127.0.0.1:$nats_port" \
    OMNIGATE_SMTP_URL="smtp://127.0.0.1:$(free_port)" \
    "$entrypoint" run --config "$source_dir/config/omnigate.example.yaml") >"$work/gateway.log" 2>&1 &
  gateway_pid=$!
  local ok=""
  for _ in $(seq 1 150); do
    if curl -fs -o /dev/null "http://127.0.0.1:$monitor_port$nats_health" \
      && curl -fs -o /dev/null "http://127.0.0.1:$http_port$readyz"; then ok=1; break; fi
    kill -0 "$gateway_pid" 2>/dev/null || break
    sleep 0.2
  done
  [ -n "$ok" ] || { cat "$work/gateway.log" >&2; fail "nats $nats_health and omnigate $readyz did not both answer 200"; }
  [ -f "$work/workdir/var/spool.db" ] || fail "the spool is not at var/spool.db of the working directory (the image's spool volume)"
  kill -TERM "$gateway_pid"
  status=0; wait "$gateway_pid" || status=$?
  gateway_pid=""
  [ "$status" = 0 ] || { cat "$work/gateway.log" >&2; fail "omnigate did not stop cleanly on SIGTERM (exit $status)"; }
  echo "entrypoint: run became ready ($nats_health, $readyz: 200), spool in var/, SIGTERM exit 0"
}

check_build() {
  local work="$3"
  rm -rf "$work"
  mkdir -p "$work/src"
  # The checkout as git has it (tracked, plus new files not ignored), like a fresh clone.
  (cd "$source_dir" && git ls-files -z --cached --others --exclude-standard \
    | xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh \
    | tar --null -T - -cf - | tar -C "$work/src" -xf -)
  [ ! -e "$work/src/build" ] || fail "the clean copy has a build/"

  # The RUN instructions between the markers, continuation lines joined as Docker joins them.
  local script="$work/run-lines.sh"
  "$python" - "$source_dir/docker/Dockerfile" "$script" <<'PY'
import sys
lines = open(sys.argv[1]).read().split("\n")
begin = lines.index("# check_docker: build commands begin")
end = lines.index("# check_docker: build commands end")
commands, current = [], None
for line in lines[begin + 1:end]:
    if current is None:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith("RUN "):
            sys.exit(f"check_docker: only RUN lines may stand between the markers, not: {line}")
        current = line[4:]
    elif line.lstrip().startswith("#"):
        continue  # Docker drops comment lines inside a continued instruction
    else:
        current += "\n" + line
    if not current.endswith("\\"):
        commands.append(current)
        current = None
if current is not None or not commands:
    sys.exit("check_docker: no complete RUN line between the markers")
with open(sys.argv[2], "w") as out:
    for command in commands:
        out.write(command + "\n\0")
PY
  # ccache (shared), where installed, makes a second run fast; CMake reads the launcher from the
  # environment, so the commands run exactly as written. Without it (CI, a bare machine) the
  # launcher would be a command that does not exist and fail CMake's compiler check.
  if command -v ccache >/dev/null 2>&1; then
    export CMAKE_CXX_COMPILER_LAUNCHER=ccache CMAKE_C_COMPILER_LAUNCHER=ccache
  fi
  # No .git in the image's context: git must not find the checkout around WORK_DIR either.
  export GIT_CEILING_DIRECTORIES="$work"
  local command started
  started=$(date +%s)
  while IFS= read -r -d '' command; do
    command="${command%$'\n'}"
    echo "RUN ${command%%$'\n'*} ..."
    (cd "$work/src" && /bin/sh -c "$command") || fail "a Dockerfile RUN line failed in a clean copy: $command"
  done <"$script"
  [ -x "$work/src/build/omnigate" ] || fail "the build stage produced no build/omnigate"
  "$work/src/build/omnigate" version || fail "the image's binary does not run"
  grep -q '^libcpp-httplib' "$work/src/build/runtime-packages.txt" \
    || fail "runtime-packages.txt misses libcpp-httplib: $(tr '\n' ' ' <"$work/src/build/runtime-packages.txt")"
  echo "Dockerfile: build stage ran in a clean copy in $(($(date +%s) - started)) s;" \
    "runtime packages: $(tr '\n' ' ' <"$work/src/build/runtime-packages.txt")"
  rm -rf "$work"
}

case "$mode" in
  static) check_static ;;
  entrypoint) check_entrypoint "$@" ;;
  build) check_build "$@" ;;
  *) fail "usage: check_docker.sh static|entrypoint|build SOURCE_DIR [BINARY|WORK_DIR]" ;;
esac
