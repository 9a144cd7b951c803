"""Runs one provider's conformance scenarios (tests/fixtures/<provider>/*.json) through the official
OpenAI Python SDK against the gateway, checking what the SDK hands back against each scenario's
`expect`. Started by tests/providers.rs with CHERRYPICK_BASE_URL and CHERRYPICK_API_KEY set."""

import json
import os
import pathlib
import sys

import openai


def contains(actual, expected, path, errors):
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            errors.append(f"{path}: {actual!r}, expected an object")
            return
        for key, value in expected.items():
            if key not in actual or actual[key] is None:
                if value is not None:
                    errors.append(f"{path}/{key}: missing (expected {value!r})")
                continue
            contains(actual[key], value, f"{path}/{key}", errors)
    elif isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            errors.append(f"{path}: {actual!r}, expected {expected!r}")
            return
        for i, (a, e) in enumerate(zip(actual, expected)):
            contains(a, e, f"{path}/{i}", errors)
    elif isinstance(expected, (int, float)) and not isinstance(expected, bool):
        if not isinstance(actual, (int, float)) or float(actual) != float(expected):
            errors.append(f"{path}: {actual!r}, expected {expected!r}")
    elif actual != expected:
        errors.append(f"{path}: {actual!r}, expected {expected!r}")


def assemble(chunks):
    """The same assembly as tests/common/conformance.rs, from the SDK's chunk objects."""
    out = {"role": None, "content": None, "refusal": None, "finish_reason": None, "usage": None}
    tools = {}
    for chunk in chunks:
        chunk = chunk.model_dump()
        assert chunk["object"] == "chat.completion.chunk", chunk
        if chunk.get("usage"):
            out["usage"] = chunk["usage"]
        for choice in chunk["choices"]:
            delta = choice["delta"] or {}
            if delta.get("role"):
                out["role"] = delta["role"]
            for field in ("content", "refusal"):
                if delta.get(field) is not None:
                    out[field] = (out[field] or "") + delta[field]
            for call in delta.get("tool_calls") or []:
                entry = tools.setdefault(call["index"], {"index": call["index"], "id": None, "name": None, "arguments": ""})
                if call.get("id"):
                    entry["id"] = call["id"]
                function = call.get("function") or {}
                if function.get("name"):
                    entry["name"] = function["name"]
                entry["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason"):
                out["finish_reason"] = choice["finish_reason"]
    out["tool_calls"] = [tools[i] for i in sorted(tools)]
    out["chunks"] = len(chunks)
    return out


def run(client, scenario):
    expect = scenario["expect"]
    request = dict(scenario["request"])
    errors = []
    try:
        if scenario.get("endpoint") == "embeddings":
            raw = client.embeddings.with_raw_response.create(**request)
            answer = raw.parse().model_dump()
            status, headers = raw.status_code, raw.headers
        elif expect.get("stream") is not None:
            with client.chat.completions.with_streaming_response.create(**request) as raw:
                status, headers = raw.status_code, raw.headers
                chunks = list(raw.parse())
            answer = assemble(chunks)
        else:
            raw = client.chat.completions.with_raw_response.create(**request)
            answer = raw.parse().model_dump()
            status, headers = raw.status_code, raw.headers
    except openai.APIStatusError as e:
        status, headers = e.status_code, e.response.headers
        body = e.body if isinstance(e.body, dict) else {}
        if status != expect["status"]:
            errors.append(f"status {status}, expected {expect['status']}: {e}")
        if "error" in expect:
            contains(body, expect["error"], "error", errors)
        for name, value in expect.get("headers", {}).items():
            if headers.get(name) != value:
                errors.append(f"header {name}: {headers.get(name)!r}, expected {value!r}")
        return errors
    if status != expect["status"]:
        errors.append(f"status {status}, expected {expect['status']}")
    for name, value in expect.get("headers", {}).items():
        if headers.get(name) != value:
            errors.append(f"header {name}: {headers.get(name)!r}, expected {value!r}")
    if "json" in expect:
        contains(answer, expect["json"], "", errors)
    if "stream" in expect:
        contains(answer, expect["stream"], "stream", errors)
    if "error" in expect:
        errors.append(f"expected an error, got {answer}")
    return errors


def main():
    folder = pathlib.Path(sys.argv[1])
    client = openai.OpenAI(
        base_url=os.environ["CHERRYPICK_BASE_URL"], api_key=os.environ["CHERRYPICK_API_KEY"], max_retries=0
    )
    failures = 0
    scenarios = sorted(p for p in folder.glob("*.json") if not p.stem.startswith("service_account"))
    for path in scenarios:
        errors = run(client, json.loads(path.read_text()))
        status = "ok" if not errors else "FAILED"
        print(f"{folder.name}/{path.stem}: {status}")
        for error in errors:
            print(f"  {error}")
        failures += bool(errors)
    print(f"{len(scenarios) - failures}/{len(scenarios)} scenarios passed through the OpenAI Python SDK")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
