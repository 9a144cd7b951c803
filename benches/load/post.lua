-- wrk script for benches/load: POST one OpenAI chat completion request per call.
-- env: BENCH_MODEL (default bench-model), BENCH_AUTH (Authorization value),
--      BENCH_STREAM=1 (adds "stream":true).
-- Prints one machine-readable line at the end: WRKJSON {...} (latencies in ms).
-- The body is the same as loadbench.py's body() and the peer harness' lua/post.lua.
local model = os.getenv("BENCH_MODEL") or "bench-model"
local stream = os.getenv("BENCH_STREAM") == "1"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("BENCH_AUTH") or ""
if auth == "" then auth = "Bearer sk-bench" end
wrk.headers["Authorization"] = auth
wrk.body = '{"model":"' .. model .. '","messages":[{"role":"system","content":"You are a helpful assistant."},'
  .. '{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32,"temperature":0'
  .. (stream and ',"stream":true' or '') .. '}'

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKJSON {\"requests\":%d,\"duration_us\":%d,\"rps\":%.1f,\"bytes\":%d,"
    .. "\"non2xx\":%d,\"connect_err\":%d,\"read_err\":%d,\"write_err\":%d,\"timeout_err\":%d,"
    .. "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6), summary.bytes,
    e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
