#!/usr/bin/env python3
"""docker/grafana/omnigate-dashboard.json queries only what the gateway exports.

usage: check_dashboard.py SOURCE_DIR

The metric names are read from the code (every quoted "omnigate_..." literal in gateway/ and
connectors/; a Histogram member adds its _bucket, _sum and _count series), the labels from the
declarations in gateway/core/metrics.cpp. Every metric a panel's PromQL names must exist there,
every label it selects, groups by or shows in a legend must be one that metric has (or one
Prometheus adds: instance, job), so a renamed metric or label fails here. The dashboard must
also cover what an operator looks at: requests, interactions by channel, spool, NATS, leases and
polls, name lookups, outgoing mail, build.
"""
import json
import os
import re
import sys

TARGET_LABELS = {"instance", "job"}
# What an operator looks at: each must be on some panel.
COVERED = [
    "omnigate_http_requests_total",
    "omnigate_publish_duration_seconds_bucket",
    "omnigate_interactions_published_total",
    "omnigate_spool_depth",
    "omnigate_spool_oldest_age_seconds",
    "omnigate_nats_connected",
    "omnigate_lease_held",
    "omnigate_poll_failures_total",
    "omnigate_name_lookups_total",
    "omnigate_consent_emails_total",
    "omnigate_build_info",
]


def code_metrics(source_dir):
    """{metric name: set of labels, or None where the labels are not declared in metrics.cpp}."""
    names = {}
    for top in ("gateway", "connectors"):
        for root, _, files in os.walk(os.path.join(source_dir, top)):
            for name in files:
                if name.endswith((".cpp", ".hpp", ".h")):
                    with open(os.path.join(root, name), encoding="utf-8") as f:
                        for match in re.finditer(r'"(omnigate_[a-z_]+)', f.read()):
                            names.setdefault(match.group(1), None)
    core = os.path.join(source_dir, "gateway", "core")
    with open(os.path.join(core, "metrics.cpp"), encoding="utf-8") as f:
        cpp = f.read()
    with open(os.path.join(core, "metrics.hpp"), encoding="utf-8") as f:
        hpp = f.read()
    # member("omnigate_x", "help" "more help", {"label", ...}[, "gauge"])
    string = r'"(?:[^"\\]|\\.)*"'
    for match in re.finditer(r'"(omnigate_[a-z_]+)",\s*(?:%s\s*)+,\s*\{([^}]*)\}' % string, cpp):
        labels = set(re.findall(r'"([a-z_]+)"', match.group(2)))
        if labels:
            names[match.group(1)] = labels
    # The histograms: their series, with the bucket's le.
    for member in re.findall(r"\bHistogram\s+(\w+)\s*;", hpp):
        match = re.search(r'\b%s\(\s*"(omnigate_[a-z_]+)"' % member, cpp)
        if match:
            base = match.group(1)
            names[base + "_bucket"] = {"le"}
            names[base + "_sum"] = set()
            names[base + "_count"] = set()
    # omnigate_build_info{version=\"...\",commit=\"...\"} is written by hand.
    build = re.search(r'"omnigate_build_info\{(.*?)\} 1', cpp, re.S)
    if build:
        names["omnigate_build_info"] = set(re.findall(r'([a-z_]+)=\\"', build.group(1)))
    return names


def labels_of(metrics, name):
    declared = metrics.get(name)
    return (declared or set()) | TARGET_LABELS


def check_expr(expr, metrics, problems, where):
    used = re.findall(r"\b(omnigate_[a-z_]+)\b", expr)
    if not used:
        problems.append(f"{where}: the query names no omnigate metric: {expr}")
    available = set(TARGET_LABELS)
    for name in used:
        if name not in metrics:
            problems.append(f"{where}: {name} is not a metric of the code")
            continue
        available |= labels_of(metrics, name)
    # Selectors right after a metric name: metric{label="...", label=~"..."}
    for name, selector in re.findall(r"\b(omnigate_[a-z_]+)\{([^}]*)\}", expr):
        for label in re.findall(r'([a-z_]+)\s*(?:=~|!~|!=|=)', selector):
            if name in metrics and label not in labels_of(metrics, name):
                problems.append(f"{where}: {name} has no label {label}")
    for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        for label in [g.strip() for g in group.split(",") if g.strip()]:
            if label not in available:
                problems.append(f"{where}: grouped by {label}, which none of {sorted(set(used))} has")
    return available


def main():
    source_dir = sys.argv[1]
    metrics = code_metrics(source_dir)
    with open(os.path.join(source_dir, "docker", "grafana", "omnigate-dashboard.json"), encoding="utf-8") as f:
        dashboard = json.load(f)
    problems = []
    variables = {v["name"] for v in dashboard.get("templating", {}).get("list", [])}
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            check_expr(query.get("query", ""), metrics, problems, f"variable {variable['name']}")
    ids, queried = set(), set()
    panels = [p for p in dashboard.get("panels", []) if p.get("type") != "row"]
    if not panels:
        problems.append("the dashboard has no panels")
    for panel in panels:
        where = f"panel {panel.get('title')!r}"
        if panel.get("id") in ids:
            problems.append(f"{where}: id {panel.get('id')} is used twice")
        ids.add(panel.get("id"))
        uid = panel.get("datasource", {}).get("uid", "")
        if uid.startswith("${") and uid[2:-1] not in variables:
            problems.append(f"{where}: data source {uid} is not a dashboard variable")
        targets = panel.get("targets", [])
        if not targets:
            problems.append(f"{where}: no query")
        for target in targets:
            expr = target.get("expr", "")
            available = check_expr(expr, metrics, problems, where)
            queried |= set(re.findall(r"\b(omnigate_[a-z_]+)\b", expr))
            # A legend shows the labels left after aggregation: those grouped by, else the metric's.
            groups = re.findall(r"\bby\s*\(([^)]*)\)", expr)
            if groups:
                available = {g.strip() for group in groups for g in group.split(",")}
            for label in re.findall(r"\{\{\s*([a-z_]+)\s*\}\}", target.get("legendFormat", "")):
                if label not in available:
                    problems.append(f"{where}: the legend shows {{{{{label}}}}}, which the query does not keep")
    for name in COVERED:
        if name not in queried:
            problems.append(f"no panel shows {name}")
    if problems:
        for problem in problems:
            print(f"FAIL: {problem}", file=sys.stderr)
        sys.exit(1)
    exported = {n for n, labels in metrics.items() if labels is not None}
    missing = sorted(exported - queried)
    print(f"dashboard: {len(panels)} panels query {len(queried)} metrics, all exported by the code"
          + (f" (not shown: {', '.join(missing)})" if missing else ""))


if __name__ == "__main__":
    main()
