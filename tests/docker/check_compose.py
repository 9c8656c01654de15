#!/usr/bin/env python3
"""docker/compose.yaml against what `make run` gives (tests/docker/check_docker.sh static).

usage: check_compose.py SOURCE_DIR DEV_SECRET_NAME...
       check_compose.py --print-nats-health-path SOURCE_DIR

Compose's own `config` has checked the schema; this checks the meaning: NATS with JetStream and
its monitoring port, a healthcheck on each of nats and omnigate, omnigate waiting for a healthy
NATS, a restart policy that stops on a config error, the spool and the dev secrets in named
volumes where the image keeps them, every dev secret passed through empty (so `up` needs no
variable and a set one wins), the mail sink as its own service with its mail in a volume, and
every file the services mount present.
"""
import os
import re
import sys

import yaml

problems = []


def need(condition, message):
    if not condition:
        problems.append(message)
    return condition


def load(source_dir):
    with open(os.path.join(source_dir, "docker", "compose.yaml")) as f:
        return yaml.safe_load(f)


def nats_health_path(compose):
    test = compose["services"]["nats"]["healthcheck"]["test"]
    text = " ".join(test) if isinstance(test, list) else test
    match = re.search(r"http://127\.0\.0\.1:8222(/healthz\S*)", text)
    if not match:
        sys.exit("check_compose: the nats healthcheck does not probe http://127.0.0.1:8222/healthz")
    return match.group(1).strip("'\"")


def volume_targets(service):
    """{container path: named volume} of a service's named-volume mounts."""
    targets = {}
    for entry in service.get("volumes", []):
        if isinstance(entry, str):
            source, _, rest = entry.partition(":")
            target = rest.split(":")[0]
        else:
            source, target = entry.get("source", ""), entry.get("target", "")
        targets[target] = source
    return targets


def dockerfile_stage(source_dir, stage):
    """The lines of one FROM ... AS <stage> block of docker/Dockerfile."""
    lines, inside = [], False
    with open(os.path.join(source_dir, "docker", "Dockerfile")) as f:
        for line in f:
            if line.startswith("FROM "):
                inside = line.split()[-1] == stage
            elif inside:
                lines.append(line.rstrip("\n"))
    return lines


def main():
    if sys.argv[1] == "--print-nats-health-path":
        print(nats_health_path(load(sys.argv[2])))
        return
    source_dir, dev_secrets = sys.argv[1], sys.argv[2:]
    with open(os.path.join(source_dir, "docker", "compose.yaml")) as f:
        text = f.read()
    compose = yaml.safe_load(text)
    services = compose.get("services", {})
    named_volumes = set((compose.get("volumes") or {}).keys())
    need(dev_secrets, "no dev secret names were given (scripts/dev-secrets.sh unreadable?)")
    need(":?" not in text, "compose.yaml requires a variable (${VAR:?...}): `up` must need none")

    for name in ("nats", "omnigate", "mail"):
        need(name in services, f"no service {name}")
    if problems:
        return

    nats = services["nats"]
    command = nats.get("command", [])
    command = command.split() if isinstance(command, str) else command
    need("-js" in command, "nats is not started with JetStream (-js)")
    need("-m" in command and command[command.index("-m") + 1] == "8222",
         "nats is not started with its monitoring port (-m 8222)")
    need(nats_health_path(compose).startswith("/healthz?js-enabled-only=true"),
         "the nats healthcheck does not ask /healthz?js-enabled-only=true")
    need("/data" in volume_targets(nats) and volume_targets(nats)["/data"] in named_volumes,
         "the JetStream store (/data) is not a named volume")

    gateway = services["omnigate"]
    depends = gateway.get("depends_on", {})
    need(isinstance(depends, dict) and depends.get("nats", {}).get("condition") == "service_healthy",
         "omnigate does not wait for a healthy nats (depends_on: nats: condition: service_healthy)")
    health = gateway.get("healthcheck", {}).get("test", [])
    health = " ".join(health) if isinstance(health, list) else health
    need("/readyz" in health, "the omnigate healthcheck does not probe /readyz")
    restart = str(gateway.get("restart", "no"))
    need(re.fullmatch(r"on-failure:[1-9][0-9]?", restart) is not None,
         f"omnigate restart: {restart}: a config error (exit 2) must not loop; use on-failure:N")

    environment = gateway.get("environment", {})
    if isinstance(environment, list):
        environment = dict(e.split("=", 1) for e in environment)
    need(environment.get("OMNIGATE_NATS_URL") == "nats://nats:4222",
         "OMNIGATE_NATS_URL is not nats://nats:4222 (the nats service)")
    need(environment.get("OMNIGATE_SMTP_URL") == "smtp://mail:2525",
         "OMNIGATE_SMTP_URL is not smtp://mail:2525 (the mail sink service)")
    for name in dev_secrets:
        need(environment.get(name) == "${%s:-}" % name,
             f"the dev secret {name} is not passed through as ${{{name}:-}} (empty = the generated one)")

    # The image keeps the spool at <WORKDIR>/var/spool.db (spool.path of the example config) and
    # the secrets at the entrypoint's default file: both must be named volumes here.
    runtime = dockerfile_stage(source_dir, "runtime")
    workdirs = [line.split()[1] for line in runtime if line.startswith("WORKDIR ")]
    need(workdirs, "the runtime stage of docker/Dockerfile has no WORKDIR")
    with open(os.path.join(source_dir, "config", "omnigate.example.yaml")) as f:
        spool_path = yaml.safe_load(f)["spool"]["path"]
    with open(os.path.join(source_dir, "docker", "entrypoint.sh")) as f:
        secrets_match = re.search(r'OMNIGATE_DEV_SECRETS:-([^}"]+)', f.read())
    mounts = volume_targets(gateway)
    wanted = {}
    if workdirs:
        wanted["spool"] = os.path.dirname(os.path.join(workdirs[-1], spool_path))
    if need(secrets_match, "docker/entrypoint.sh has no default OMNIGATE_DEV_SECRETS"):
        wanted["dev secrets"] = os.path.dirname(secrets_match.group(1))
    for what, directory in wanted.items():
        need(mounts.get(directory) in named_volumes,
             f"the {what} ({directory}) is not a named volume of omnigate")
    need(any(line.startswith("HEALTHCHECK") for line in runtime), "the runtime stage has no HEALTHCHECK")
    users = [line.split()[1] for line in runtime if line.startswith("USER ")]
    need(users and users[-1] not in ("root", "0"), "the runtime stage does not run as a non-root user")

    mail = services["mail"]
    need(mail.get("build", {}).get("target") == "mail-sink", "the mail service is not the mail-sink stage")
    need(volume_targets(mail).get("/var/mail") in named_volumes, "the mail sink's /var/mail is not a named volume")
    sink = dockerfile_stage(source_dir, "mail-sink")
    need(any("smtp-sink.mjs" in line and "--dir" in line and "/var/mail" in line for line in sink),
         "the mail-sink stage does not run smtp-sink.mjs --dir /var/mail")
    need(any("npm ci" in line for line in sink), "the mail-sink stage does not install node_modules with npm ci")

    # Files mounted from the repository (the observability profile) exist.
    for name, service in services.items():
        for entry in service.get("volumes", []):
            source = entry.split(":")[0] if isinstance(entry, str) else entry.get("source", "")
            if source.startswith("."):
                path = os.path.normpath(os.path.join(source_dir, "docker", source))
                need(os.path.exists(path), f"{name} mounts {source}, which does not exist")

    if problems:
        return
    print(f"compose.yaml: {', '.join(services)}; nats -js -m 8222 healthy before omnigate; "
          f"restart {restart}; {len(dev_secrets)} dev secrets passed through; spool, secrets, mail in volumes")


if __name__ == "__main__":
    main()
    if problems:
        for p in problems:
            print(f"FAIL: {p}", file=sys.stderr)
        sys.exit(1)
