#!/usr/bin/env python3
"""Gateway CPU and latency per request for a cache hit, end to end over HTTP.

    cargo build --release && python3 benches/load/cache_hit.py [--tier l1|l2|l3|l3-postgres]
        [--requests 20000] [--threads 4]

Starts a stub upstream (Python, answers one chat completion) and `target/release/cherrypick serve`
with only the chosen tier on (l2: Redis at 127.0.0.1:6379; l3: a SQLite file; l3-postgres:
PostgreSQL at 127.0.0.1:5432/test), sends the same deterministic request once (a miss), then N more
from keep-alive connections (all hits), and reads the gateway process's CPU time (user + system,
/proc) before and after. Prints µs of gateway CPU per hit (the client's own CPU is not counted) and
the client-side latency percentiles. Set CHERRYPICK_BIN to use another binary.
"""
import argparse, http.client, http.server, json, os, socket, subprocess, sys, tempfile, threading, time

ANSWER = json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "echo",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."},
                                  "finish_reason": "stop", "logprobs": None}],
                     "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}}).encode()


class Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)

    def log_message(self, *args):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--tier", choices=["l1", "l2", "l3", "l3-postgres"], default="l1")
    parser.add_argument("--wrk", action="store_true",
                        help="drive the hits with wrk (32 connections, 10 s, benches/load/post.lua) instead of Python")
    args = parser.parse_args()
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    binary = os.environ.get("CHERRYPICK_BIN") or os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(repo, "target")), "release", "cherrypick")

    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = free_port()
    data = tempfile.mkdtemp(prefix="cherrypick-cache-bench-")
    config = os.path.join(data, "bench.toml")
    with open(config, "w") as f:
        f.write(f"""
[server]
listen = "127.0.0.1:{port}"
[log]
level = "warn"
[providers.stub]
kind = "openai_compatible"
base_url = "http://127.0.0.1:{upstream.server_address[1]}/v1"
[models."gpt-4o-mini"]
provider = "stub"
[cache]
enabled = true
data_dir = "{data}"
[cache.semantic]
enabled = false
""")
        tiers = {
            "l1": "[cache.l3]\nenabled = false\n",
            "l2": f"[cache.l1]\nenabled = false\n[cache.l3]\nenabled = false\n[cache.l2]\nurl = \"redis://127.0.0.1:6379\"\nkey_prefix = \"bench:{port}:\"\n",
            "l3": "[cache.l1]\nenabled = false\n",
            "l3-postgres": "[cache.l1]\nenabled = false\n[cache.l3]\nurl = \"postgres://postgres@127.0.0.1:5432/test\"\n",
        }
        f.write(tiers[args.tier])
    gateway = subprocess.Popen([binary, "serve", "--config", config])
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        hit = "hit-" + args.tier.split("-")[0]
        body = json.dumps({"model": "gpt-4o-mini", "temperature": 0, "seed": port, "messages": [
            {"role": "system", "content": "Answer in one word."},
            {"role": "user", "content": "What is the capital of France?"}]})
        headers = {"content-type": "application/json"}

        def send(conn):
            conn.request("POST", "/v1/chat/completions", body, headers)
            response = conn.getresponse()
            response.read()
            return response.status, response.getheader("x-cherrypick-cache")

        first = http.client.HTTPConnection("127.0.0.1", port)
        assert send(first) == (200, "miss"), "the first request is a miss"
        time.sleep(0.2)
        assert send(first) == (200, hit), f"the second is a {hit}"
        if args.wrk:
            # post.lua's body is deterministic (temperature 0): after its first request, all hits.
            env = dict(os.environ, BENCH_MODEL="gpt-4o-mini")
            before = cpu_seconds(gateway.pid)
            out = subprocess.run(["wrk", "-t1", "-c32", "-d10s", "-s", os.path.join(repo, "benches/load/post.lua"),
                                  f"http://127.0.0.1:{port}/v1/chat/completions"], env=env, capture_output=True, text=True).stdout
            cpu = cpu_seconds(gateway.pid) - before
            result = json.loads(next(l for l in out.splitlines() if l.startswith("WRKJSON "))[8:])
            total = result["requests"]
            print(json.dumps({"tier": args.tier, "load": "wrk -c32", "requests": total, "rps": result["rps"],
                              "non2xx": result["non2xx"], "gateway_cpu_s": round(cpu, 3),
                              "cpu_us_per_hit": round(cpu / total * 1e6, 1)}))
            return
        per_thread = args.requests // args.threads
        failures, latencies = [], []

        def worker():
            conn = http.client.HTTPConnection("127.0.0.1", port)
            for _ in range(per_thread):
                started = time.perf_counter()
                if send(conn) != (200, hit):
                    failures.append(1)
                latencies.append(time.perf_counter() - started)

        before, started = cpu_seconds(gateway.pid), time.time()
        threads = [threading.Thread(target=worker) for _ in range(args.threads)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        cpu, wall = cpu_seconds(gateway.pid) - before, time.time() - started
        total = per_thread * args.threads
        latencies.sort()
        pct = lambda p: round(latencies[min(int(len(latencies) * p), len(latencies) - 1)] * 1e3, 3)
        print(json.dumps({"tier": args.tier, "requests": total, "not_hits": len(failures), "wall_s": round(wall, 2),
                          "gateway_cpu_s": round(cpu, 3), "cpu_us_per_hit": round(cpu / total * 1e6, 1),
                          "latency_ms": {"p50": pct(0.5), "p99": pct(0.99)}}))
    finally:
        gateway.terminate()
        gateway.wait()


if __name__ == "__main__":
    sys.exit(main())
