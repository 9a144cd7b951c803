#!/usr/bin/env python3
"""Checks the Grafana dashboards in docker/grafana/dashboards (standard library only).

    python3 docker/grafana/lint.py                      # structure, metric names, variables
    python3 docker/grafana/lint.py --prometheus URL     # also run every query against a Prometheus
    python3 docker/grafana/lint.py --prometheus URL --require-series   # and fail on empty results

Each dashboard needs a uid, a title and no template variables; each panel and target the
`prometheus` datasource; each target a refId and an expr. Every metric an expr names must be one the
gateway exports (METRICS below), a histogram only through _bucket/_sum/_count, rate() and increase()
only over counters and histogram series. The only `$` variables allowed anywhere are Grafana's
$__rate_interval, $__interval and $__range.
"""

import argparse
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

# What the gateway exports, by type (src/telemetry). Histograms are queried as NAME_bucket/_sum/_count.
METRICS = {
    "cherrypick_requests_total": "counter",
    "cherrypick_request_duration_seconds": "histogram",
    "cherrypick_requests_in_flight": "gauge",
    "cherrypick_llm_latency_seconds": "histogram",
    "cherrypick_time_to_first_token_seconds": "histogram",
    "cherrypick_tokens_total": "counter",
    "cherrypick_cost_usd_total": "counter",
    "cherrypick_upstream_errors_total": "counter",
    "cherrypick_upstream_retries_total": "counter",
    "cherrypick_circuit_state": "gauge",
    "cherrypick_router_decisions_total": "counter",
    "cherrypick_router_decision_seconds": "histogram",
    "cherrypick_router_batch_size": "histogram",
    "cherrypick_router_queue_depth": "gauge",
    "cherrypick_router_step_asides_total": "counter",
    "cherrypick_cache_lookups_total": "counter",
    "cherrypick_cache_writes_total": "counter",
    "cherrypick_cache_operation_seconds": "histogram",
    "cherrypick_cache_requests_total": "counter",
    "cherrypick_memory_usage_bytes": "gauge",
    "cherrypick_memory_entries": "gauge",
    "cherrypick_rate_limited_total": "counter",
    "cherrypick_budget_rejected_total": "counter",
    "cherrypick_auth_failures_total": "counter",
    "cherrypick_db_connections": "gauge",
    "cherrypick_request_log_rows_total": "counter",
    "cherrypick_request_log_queue_depth": "gauge",
    "cherrypick_request_log_write_seconds": "histogram",
    "cherrypick_limits_backend_errors_total": "counter",
    "cherrypick_model_circuit_state": "gauge",
    "cherrypick_process_cpu_seconds_total": "counter",
    "cherrypick_process_resident_memory_bytes": "gauge",
    "cherrypick_process_open_fds": "gauge",
}

# Series names a query may select: counters and gauges as they are, histograms by their three parts.
SERIES = {}
for _name, _kind in METRICS.items():
    if _kind == "histogram":
        for _suffix in ("_bucket", "_sum", "_count"):
            SERIES[_name + _suffix] = "counter"
    else:
        SERIES[_name] = _kind

# Grafana's own variables, and what they stand for when a query is sent to Prometheus directly.
ALLOWED_VARIABLES = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
PANEL_TYPES = {"timeseries", "stat"}

PROMQL_WORDS = {
    # aggregations and their modifiers
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset",
    # functions
    "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
    "day_of_month", "day_of_week", "days_in_month", "delta", "deriv", "exp", "floor",
    "histogram_quantile", "holt_winters", "hour", "idelta", "increase", "irate", "label_join",
    "label_replace", "ln", "log2", "log10", "minute", "month", "predict_linear", "rate", "resets",
    "round", "scalar", "sgn", "sort", "sort_desc", "sqrt", "time", "timestamp", "vector", "year",
    "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
    "quantile_over_time", "stddev_over_time", "stdvar_over_time", "last_over_time",
    "present_over_time",
}

VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
MATCHERS = re.compile(r"\{[^}]*\}")
RANGES = re.compile(r"\[[^\]]*\]")
NUMBER = re.compile(r"(?<![A-Za-z0-9_:])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
RATE_OF = re.compile(r"\b(?:rate|irate|increase)\s*\(\s*([A-Za-z_:][A-Za-z0-9_:]*)")


def strings_in(value):
    """Every string anywhere in a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def substitute(expr):
    return VARIABLE.sub(lambda m: ALLOWED_VARIABLES.get(m.group(1), m.group(0)), expr)


def expr_problems(expr):
    """Unknown metrics, misused histograms and gauges, unknown words in one PromQL expression."""
    problems = []
    bare = STRING.sub('""', substitute(expr))
    bare = RANGES.sub("", MATCHERS.sub("", GROUPING.sub("", bare)))
    bare = NUMBER.sub("", bare)
    for word in IDENTIFIER.findall(bare):
        if word in SERIES or word in PROMQL_WORDS:
            continue
        if METRICS.get(word) == "histogram":
            problems.append(f"histogram `{word}` must be queried as {word}_bucket, _sum or _count")
        elif word.startswith("cherrypick_"):
            problems.append(f"`{word}` is not a metric the gateway exports")
        else:
            problems.append(f"`{word}` is neither a known metric nor a PromQL function or keyword")
    for metric in RATE_OF.findall(STRING.sub('""', expr)):
        if SERIES.get(metric) == "gauge":
            problems.append(f"rate()/increase() over the gauge `{metric}`")
    return problems


def lint(path, seen_uids):
    problems = []
    say = lambda where, what: problems.append(f"{path.name}: {where}: {what}")  # noqa: E731
    try:
        board = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return [f"{path.name}: cannot read: {e}"], []
    for key in ("uid", "title"):
        if not isinstance(board.get(key), str) or not board[key].strip():
            say("dashboard", f"`{key}` is missing or empty")
    uid = board.get("uid")
    if uid in seen_uids:
        say("dashboard", f"uid `{uid}` is also used by {seen_uids[uid]}")
    seen_uids[uid] = path.name
    if not isinstance(board.get("schemaVersion"), int):
        say("dashboard", "`schemaVersion` is missing")
    if board.get("templating", {}).get("list"):
        say("dashboard", "has template variables; none are allowed")
    for text in strings_in(board):
        for name in VARIABLE.findall(text):
            if name not in ALLOWED_VARIABLES:
                say("dashboard", f"variable `${name}` in {text!r}")
    panels = board.get("panels")
    if not isinstance(panels, list) or not panels:
        say("dashboard", "has no panels")
        return problems, []
    queries, ids = [], set()
    for panel in panels:
        where = f"panel {panel.get('id')} {panel.get('title')!r}"
        if panel.get("id") in ids or not isinstance(panel.get("id"), int):
            say(where, "`id` is missing or not unique")
        ids.add(panel.get("id"))
        if not panel.get("title"):
            say(where, "`title` is missing")
        if panel.get("type") not in PANEL_TYPES:
            say(where, f"type `{panel.get('type')}` is not one of {sorted(PANEL_TYPES)}")
        if panel.get("datasource") != DATASOURCE:
            say(where, f"datasource is {panel.get('datasource')!r}, not {DATASOURCE}")
        if not isinstance(panel.get("gridPos"), dict):
            say(where, "`gridPos` is missing")
        targets = panel.get("targets")
        if not isinstance(targets, list) or not targets:
            say(where, "has no targets")
            continue
        refs = set()
        for target in targets:
            ref = target.get("refId")
            at = f"{where} target {ref}"
            if not isinstance(ref, str) or not ref or ref in refs:
                say(at, "`refId` is missing or not unique in the panel")
            refs.add(ref)
            if target.get("datasource") != DATASOURCE:
                say(at, f"datasource is {target.get('datasource')!r}, not {DATASOURCE}")
            expr = target.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                say(at, "`expr` is missing or empty")
                continue
            for problem in expr_problems(expr):
                say(at, problem)
            queries.append((at, expr))
    return problems, queries


def query(prometheus, expr):
    """Runs `expr` as an instant query; returns (error or None, number of series)."""
    url = prometheus.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": substitute(expr)})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
    except urllib.error.HTTPError as e:
        try:
            body = json.load(e)
        except ValueError:
            return f"HTTP {e.code}", 0
    except (OSError, ValueError) as e:
        return f"cannot query {prometheus}: {e}", 0
    if body.get("status") != "success":
        return f"{body.get('errorType')}: {body.get('error')}", 0
    result = body["data"]["result"]
    return None, len(result) if isinstance(result, list) else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dashboards", nargs="?", type=Path, default=Path(__file__).parent / "dashboards")
    parser.add_argument("--prometheus", metavar="URL", help="also run every query against this Prometheus")
    parser.add_argument("--require-series", action="store_true", help="with --prometheus: fail on an empty result")
    args = parser.parse_args()

    files = sorted(args.dashboards.glob("*.json"))
    if not files:
        print(f"no dashboards in {args.dashboards}", file=sys.stderr)
        return 1
    problems, queries, uids = [], [], {}
    for path in files:
        found, exprs = lint(path, uids)
        problems += found
        queries += exprs
    if args.prometheus:
        for at, expr in queries:
            error, series = query(args.prometheus, expr)
            if error:
                problems.append(f"{at}: Prometheus: {error}\n    {expr}")
            elif series == 0 and args.require_series:
                problems.append(f"{at}: no series\n    {expr}")
    for problem in problems:
        print(problem, file=sys.stderr)
    checked = f"{len(files)} dashboards, {len(queries)} queries"
    if args.prometheus:
        checked += f", run against {args.prometheus}"
    print(f"{checked}: {'ok' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
