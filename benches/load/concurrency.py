#!/usr/bin/env python3
"""Concurrency and added-latency driver of benches/load/concurrency.sh (Python stdlib only).

    concurrency.py burst   --url URL --n 10000 [--key K] [--run-id ID] [--gw-pid PID] [--psql URL] --out raw.jsonl
    concurrency.py latency --direct-url URL --gateway-url URL --rates 1000,2000 --duration 10 --rounds 2 ...
    concurrency.py summary raw.jsonl          # the Markdown tables from saved results

burst: opens N connections (all of them before any request is sent), then sends one chat
completion on every connection at (nearly) the same moment and waits for all the answers. An
answer counts only if it is HTTP 200 with a valid chat.completion body (the fixed upstream's text
and usage). Reports answered / failed by kind, the connect phase, the wall time from the first send
to the last answer, and latency percentiles (send -> whole body read, client-side).

latency: a fixed request rate over a pool of keep-alive connections, straight to the upstream and
through the gateway, interleaved per round; p50/p90/p99 of each and the difference (added latency).

Every request through the gateway carries a unique `x-request-id` (`<run id>-<phase>-<n>`), which the
gateway uses as the request log row id; with --psql the rows of each phase are counted in
`request_log` (polled until the count stops growing) and compared with the answered requests.
"""
import argparse, asyncio, gc, json, multiprocessing, os, resource, socket, statistics, subprocess, sys, time

# /proc readers shared with the throughput harness next to this file.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from loadbench import cpu_s, sys_busy  # noqa: E402
EXPECT_CONTENT = "Hello! This is a fixed benchmark response from the fake upstream."
BODY = ('{"model":"%s","messages":[{"role":"system","content":"You are a helpful assistant."},'
        '{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32}')
# Kernel counters worth a delta: accept-queue overflows and SYN retransmits show a listen backlog
# that is too short; resets and failed attempts show refused or dropped connections.
NETSTAT_KEYS = ("TcpExt:ListenOverflows", "TcpExt:ListenDrops", "TcpExt:TCPSynRetrans", "TcpExt:TCPReqQFullDrop",
                "TcpExt:TCPTimeouts", "Tcp:AttemptFails", "Tcp:EstabResets", "Tcp:RetransSegs")


def log(*a):
    print(f"[concurrency.py {time.strftime('%H:%M:%S')}]", *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- limits and /proc
def raise_nofile(need):
    """Soft fd limit up to the hard one (an unprivileged process cannot go past it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(need, soft)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def proc_nofile(pid):
    """The soft 'Max open files' of another process (it inherited the ulimit of its shell)."""
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
    except (OSError, ValueError):
        pass
    return None


def cpu_by_pid(pids):
    return {p: cpu_s([p]) for p in pids}


def run_delay_s(pid):
    """Seconds the process's threads spent runnable but waiting for a CPU (/proc/*/schedstat):
    how much the 2 shared cores, rather than the process itself, held it back."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return total / 1e9


def pids_named(name):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/comm") as f:
                    if f.read().strip() == name:
                        out.append(int(d))
            except OSError:
                pass
    return out


def netstat():
    """Machine-wide TCP counters from /proc/net/netstat and /proc/net/snmp."""
    out = {}
    for path in ("/proc/net/netstat", "/proc/net/snmp"):
        with open(path) as f:
            lines = f.read().splitlines()
        for head, vals in zip(lines[::2], lines[1::2]):
            names, values = head.split(), vals.split()
            for n, v in zip(names[1:], values[1:]):
                key = names[0] + n
                if key in NETSTAT_KEYS:
                    out[key] = int(v)
    return out


def listen_queue(port):
    """(connections waiting to be accepted, backlog asked for) of the listener on `port`: Recv-Q
    and Send-Q of a LISTEN socket in `ss`."""
    try:
        out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, timeout=5).stdout
        f = out.split()
        return int(f[1]), int(f[2])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None, None


def listen_backlog(port):
    return listen_queue(port)[1]


def sample_proc(pid, stop, conn, period=0.1):
    """Child process (so that listing 20k fds does not take the driver's GIL): the gateway's peak
    open fds, RSS and threads."""
    peak = {"fds": 0, "rss_kib": 0, "threads": 0}
    while True:
        try:
            peak["fds"] = max(peak["fds"], len(os.listdir(f"/proc/{pid}/fd")))
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        peak["rss_kib"] = max(peak["rss_kib"], int(line.split()[1]))
                    elif line.startswith("Threads:"):
                        peak["threads"] = max(peak["threads"], int(line.split()[1]))
        except (OSError, ValueError):
            pass
        if stop.wait(period):
            break
    conn.send(peak)


class ProcSampler:
    def __init__(self, pid):
        self.pid, self.peak = pid, None

    def __enter__(self):
        if self.pid:
            self.stop = multiprocessing.Event()
            self.rx, tx = multiprocessing.Pipe(duplex=False)
            self.p = multiprocessing.Process(target=sample_proc, args=(self.pid, self.stop, tx), daemon=True)
            self.p.start()
        return self

    def __exit__(self, *exc):
        if self.pid:
            self.stop.set()
            self.peak = self.rx.recv() if self.rx.poll(10) else None
            self.p.join(5)


# ---------------------------------------------------------------- HTTP/1.1 on asyncio protocols
def split_url(url):
    assert url.startswith("http://"), url
    hostport, _, path = url[7:].partition("/")
    host, _, port = hostport.partition(":")
    return host, int(port or 80), "/" + path


def request_bytes(host, port, path, model, key, rid, keep_alive):
    body = (BODY % model).encode()
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
            f"Content-Length: {len(body)}", f"Connection: {'keep-alive' if keep_alive else 'close'}"]
    if key:
        head.append(f"Authorization: Bearer {key}")
    if rid:
        head.append(f"x-request-id: {rid}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def parse_response(buf):
    """(status, headers, body, consumed) once a whole response is in `buf`, else None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = buf[:end].decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    start = end + 4
    if "content-length" in headers:
        n = int(headers["content-length"])
        if len(buf) < start + n:
            return None
        return status, headers, buf[start:start + n], start + n
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body, i = bytearray(), start
        while True:
            nl = buf.find(b"\r\n", i)
            if nl < 0:
                return None
            size = int(buf[i:nl].split(b";")[0], 16)
            if size == 0:
                tail = buf.find(b"\r\n\r\n", nl)   # no trailers expected: "0\r\n\r\n"
                return (status, headers, bytes(body), tail + 4) if tail >= 0 else None
            if len(buf) < nl + 2 + size + 2:
                return None
            body += buf[nl + 2:nl + 2 + size]
            i = nl + 2 + size + 2
    return None   # no length: not expected from nginx or the gateway


def check(status, body):
    """None when the answer is a valid completion, else the failure kind."""
    if status != 200:
        return f"http_{status}"
    try:
        d = json.loads(body)
        ok = (d["object"] == "chat.completion" and d["choices"][0]["message"]["content"] == EXPECT_CONTENT
              and d["choices"][0]["finish_reason"] == "stop" and d["usage"]["total_tokens"] == 26)
    except (ValueError, KeyError, IndexError, TypeError):
        ok = False
    return None if ok else "invalid_body"


class Conn(asyncio.Protocol):
    """One HTTP/1.1 connection; request() sends one request and waits for the whole response."""

    def __init__(self):
        self.tr, self.buf, self.waiter, self.lost = None, bytearray(), None, None

    def connection_made(self, tr):
        self.tr = tr

    def data_received(self, data):
        self.buf += data
        if self.waiter and not self.waiter.done():
            r = parse_response(self.buf)
            if r:
                del self.buf[:r[3]]
                self.waiter.set_result((time.perf_counter(), r))

    def connection_lost(self, exc):
        self.lost = exc or ConnectionResetError("closed by peer")
        if self.waiter and not self.waiter.done():
            self.waiter.set_exception(self.lost)

    def send(self, data):
        self.waiter = asyncio.get_running_loop().create_future()
        if self.lost:
            self.waiter.set_exception(self.lost)
        else:
            self.tr.write(data)
        return self.waiter


def err_kind(e):
    if isinstance(e, asyncio.TimeoutError):
        return "timeout"
    if isinstance(e, OSError) and e.errno:
        import errno
        return errno.errorcode.get(e.errno, str(e.errno))
    return type(e).__name__


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return None
    k = (len(xs) - 1) * q
    i = int(k)
    return xs[i] + (xs[min(i + 1, len(xs) - 1)] - xs[i]) * (k - i)


def dist(ms):
    return {"p50": pct(ms, .5), "p90": pct(ms, .9), "p99": pct(ms, .99), "max": max(ms) if ms else None,
            "mean": statistics.fmean(ms) if ms else None}


# ---------------------------------------------------------------- burst
async def burst_part(a, first, count, barrier):
    """Connects `count` sockets, waits at the barrier (all processes connected), sends on all of
    them at once, waits for every answer. Returns raw timings (seconds, perf_counter)."""
    loop = asyncio.get_running_loop()
    host, port, path = split_url(a.url)
    conns, fails, connect_s = [], {}, []

    async def connect(i):
        t = time.perf_counter()
        try:
            _, c = await asyncio.wait_for(loop.create_connection(Conn, host, port), a.connect_timeout)
            connect_s.append(time.perf_counter() - t)
            conns.append((i, c))
        except Exception as e:  # noqa: BLE001 - every failure is counted by kind
            k = "connect_" + err_kind(e)
            fails[k] = fails.get(k, 0) + 1

    t_c0 = time.perf_counter()
    if a.connect_batch <= 0:
        await asyncio.gather(*(connect(first + i) for i in range(count)))
    else:
        # Paced: a batch smaller than the listen backlog, then wait until the server has accepted
        # it (its accept queue is empty), so no handshake is dropped on a full queue.
        for b in range(0, count, a.connect_batch):
            await asyncio.gather(*(connect(first + i) for i in range(b, min(count, b + a.connect_batch))))
            for _ in range(200):
                if not listen_queue(port)[0]:
                    break
                await asyncio.sleep(0.005)
    t_c1 = time.perf_counter()
    # Everyone connected (or failed); line up with the other processes before sending.
    if barrier is not None:
        await loop.run_in_executor(None, barrier.wait)
    t0 = time.perf_counter()
    waits = []
    for i, c in conns:
        rid = f"{a.run_id}-{i}" if a.run_id else None
        waits.append((time.perf_counter(), c.send(request_bytes(host, port, path, a.model, a.key, rid, False))))
    t_sent = time.perf_counter()
    lat, cache_hdr, t_last = [], {}, t0
    done, pending = await asyncio.wait([w for _, w in waits], timeout=a.timeout) if waits else (set(), set())
    for t_send, w in waits:
        if w in pending:
            fails["timeout"] = fails.get("timeout", 0) + 1
            w.cancel()
            continue
        if w.exception():
            k = "closed_" + err_kind(w.exception())
            fails[k] = fails.get(k, 0) + 1
            continue
        t_end, (status, headers, body, _) = w.result()
        bad = check(status, body)
        if bad:
            fails[bad] = fails.get(bad, 0) + 1
            if fails[bad] <= 3:
                log(f"{bad}: {body[:200]!r}")
            continue
        if "x-cherrypick-cache" in headers:
            h = headers["x-cherrypick-cache"]
            cache_hdr[h] = cache_hdr.get(h, 0) + 1
        lat.append((t_end - t_send) * 1000)
        t_last = max(t_last, t_end)
    for _, c in conns:
        if c.tr:
            c.tr.close()
    await asyncio.sleep(0)
    return {"connected": len(conns), "fails": fails, "lat_ms": lat, "connect_ms": [x * 1000 for x in connect_s],
            "connect_phase_s": t_c1 - t_c0, "t0": t0, "t_sent": t_sent, "t_last": t_last, "cache": cache_hdr,
            "epoch0": time.time() - (time.perf_counter() - t0)}


def burst_proc(a, first, count, barrier, tx):
    raise_nofile(count + 64)
    tx.send(asyncio.run(burst_part(a, first, count, barrier)))


def burst(a):
    soft, hard = raise_nofile(a.n + 64)
    if soft < a.n // a.procs + 64:
        sys.exit(f"fd limit {soft} (hard {hard}) is too low for {a.n} connections")
    host, port, _ = split_url(a.url)
    gw_nofile = proc_nofile(a.gw_pid) if a.gw_pid else None
    # Through the gateway every in-flight request holds two sockets: the client's and its own to the upstream.
    if gw_nofile is not None and gw_nofile < 2 * a.n + 64:
        log(f"WARNING: the gateway's fd limit is {gw_nofile}, below 2 x {a.n} + 64 (client + upstream sockets)")
    backlog = listen_backlog(port)
    log(f"burst {a.label}: {a.n} connections to {a.url} ({a.procs} process(es)), fd limit {soft}, "
        f"target listen backlog {backlog}, gateway fd limit {gw_nofile}")
    net0, busy0 = netstat(), sys_busy()
    cpu0 = cpu_s([a.gw_pid]) if a.gw_pid else 0
    w0 = time.time()
    with ProcSampler(a.gw_pid) as smp:
        if a.procs == 1:
            parts = [asyncio.run(burst_part(a, 0, a.n, None))]
        else:
            barrier = multiprocessing.Barrier(a.procs)
            share = [a.n // a.procs + (1 if i < a.n % a.procs else 0) for i in range(a.procs)]
            pipes, procs = [], []
            for i in range(a.procs):
                rx, tx = multiprocessing.Pipe(duplex=False)
                p = multiprocessing.Process(target=burst_proc, args=(a, sum(share[:i]), share[i], barrier, tx))
                p.start()
                pipes.append(rx)
                procs.append(p)
            parts = [rx.recv() for rx in pipes]
            for p in procs:
                p.join()
    wall = time.time() - w0
    net1 = netstat()
    fails = {}
    for p in parts:
        for k, v in p["fails"].items():
            fails[k] = fails.get(k, 0) + v
    lat = [x for p in parts for x in p["lat_ms"]]
    cache = {}
    for p in parts:
        for k, v in p["cache"].items():
            cache[k] = cache.get(k, 0) + v
    # Processes share no clock origin: use the wall-clock start of each part.
    t0 = min(p["epoch0"] for p in parts)
    t_last = max(p["epoch0"] + p["t_last"] - p["t0"] for p in parts)
    t_sent = max(p["epoch0"] + p["t_sent"] - p["t0"] for p in parts)
    row = {"kind": "burst", "label": a.label, "url": a.url, "n": a.n, "procs": a.procs, "run_id": a.run_id,
           "connect_batch": a.connect_batch,
           "connected": sum(p["connected"] for p in parts), "answered": len(lat), "fails": fails,
           "connect_phase_s": max(p["connect_phase_s"] for p in parts),
           "connect_ms": dist([x for p in parts for x in p["connect_ms"]]),
           "send_phase_ms": (t_sent - t0) * 1000, "wall_s": t_last - t0 if lat else None, "lat_ms": dist(lat),
           "client_nofile": soft, "gateway_nofile": gw_nofile, "listen_backlog": backlog,
           "somaxconn": int(open("/proc/sys/net/core/somaxconn").read()),
           "net": {k: net1.get(k, 0) - net0.get(k, 0) for k in NETSTAT_KEYS}, "cache_header": cache,
           "gw_cpu_s": (cpu_s([a.gw_pid]) - cpu0) if a.gw_pid else None, "busy_cores": (sys_busy() - busy0) / wall,
           "gw_peak": smp.peak, "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    if a.psql and a.run_id:
        row["log"] = count_rows(a.psql, a.run_id + "-", len(lat), a.rows_timeout)
    emit(a.out, row)
    log(f"burst {a.label}: answered {row['answered']}/{a.n}, failed {fails or 'none'}, "
        f"connect phase {row['connect_phase_s']:.2f} s, wall {fmt(row['wall_s'], 3)} s, "
        f"p50/p99/max {fmt(row['lat_ms']['p50'])}/{fmt(row['lat_ms']['p99'])}/{fmt(row['lat_ms']['max'])} ms"
        + (f", rows {row['log']['rows']}" if "log" in row else ""))
    return 0 if row["answered"] == a.n else 2


# ---------------------------------------------------------------- request log rows
def psql(url, sql):
    r = subprocess.run(["psql", url, "-XAtq", "-c", sql], capture_output=True, text=True, timeout=30)
    if r.returncode:
        raise RuntimeError(r.stderr.strip())
    return r.stdout.strip()


def count_rows(url, prefix, expect, timeout):
    """Rows whose id starts with `prefix`, polled until the count reaches `expect` or stops growing
    (unchanged for 2 s, 10x the writer's default flush interval)."""
    assert "'" not in prefix
    sql = (f"SELECT count(*), count(*) FILTER (WHERE status = 200) FROM request_log "
           f"WHERE id LIKE '{prefix}%'")
    t0, last, since = time.time(), None, time.time()
    while True:
        try:
            rows, ok = (int(x) for x in psql(url, sql).split("|"))
        except (RuntimeError, ValueError, subprocess.SubprocessError) as e:
            return {"error": str(e)[:300]}
        now = time.time()
        if rows != last:
            last, since = rows, now
        if rows >= expect or now - since >= 2 or now - t0 >= timeout:
            return {"rows": rows, "rows_200": ok, "expected": expect, "settled_s": round(now - t0, 2)}
        time.sleep(0.25)


# ---------------------------------------------------------------- fixed-rate latency
async def fixed_rate(url, key, model, rate, duration, nconns, rid_prefix, warm):
    """`rate` requests/s for `warm` + `duration` s over `nconns` keep-alive connections; the first
    `warm` seconds are not recorded (first-use costs on both sides). Latency is timed from the
    actual send; `late_ms` is how far sends fell behind the schedule (queueing when the target or
    the client cannot keep up)."""
    loop = asyncio.get_running_loop()
    host, port, path = split_url(url)
    conns = [(await loop.create_connection(Conn, host, port))[1] for _ in range(nconns)]
    q = asyncio.Queue()
    lat, late, fails, answered = [], [], {}, [0]
    n_warm = int(rate * warm)

    async def worker(c):
        while True:
            item = await q.get()
            if item is None:
                return
            sched, i = item
            rid = f"{rid_prefix}-{i}" if rid_prefix else None
            t_send = time.perf_counter()
            try:
                t_end, (status, _, body, _) = await asyncio.wait_for(
                    c.send(request_bytes(host, port, path, model, key, rid, True)), 10)
            except Exception as e:  # noqa: BLE001
                k = err_kind(e)
                fails[k] = fails.get(k, 0) + 1
                c = (await loop.create_connection(Conn, host, port))[1]
                continue
            bad = check(status, body)
            if bad:
                fails[bad] = fails.get(bad, 0) + 1
                continue
            answered[0] += 1
            if i >= n_warm:
                lat.append((t_end - t_send) * 1000)
                late.append((t_send - sched) * 1000)

    workers = [asyncio.create_task(worker(c)) for c in conns]
    n = n_warm + int(rate * duration)
    t0 = time.perf_counter() + 0.05
    t_rec = t0 + warm
    for i in range(n):
        sched = t0 + i / rate
        d = sched - time.perf_counter()
        if d > 0:
            await asyncio.sleep(d)
        q.put_nowait((sched, i))
    t_disp = time.perf_counter()
    for _ in workers:
        q.put_nowait(None)
    await asyncio.gather(*workers)
    t_end = time.perf_counter()
    for c in conns:
        c.tr.close()
    return {"sent": n, "warm_up": n_warm, "answered": answered[0], "recorded": len(lat), "fails": fails,
            "lat_ms": dist(lat), "late_ms": dist(late), "achieved_rps": len(lat) / (t_end - t_rec),
            "dispatch_s": t_disp - t0}


def latency(a):
    raise_nofile(4 * a.conns + 64)
    targets = [("direct", a.direct_url, None), ("gateway", a.gateway_url, a.key)]
    gw_ng = pids_named("nginx")
    total_gw = 0
    for r in range(a.rounds):
        for rate in a.rates:
            # Alternate which target goes first, so neither always runs on a warmer machine.
            for name, url, key in (targets if (r + a.rates.index(rate)) % 2 == 0 else targets[::-1]):
                prefix = f"{a.run_id}-{rate}-r{r}" if (a.run_id and name == "gateway") else None
                # PostgreSQL backends may start during the run (the store's pool connects lazily):
                # CPU per pid, a pid seen only at the end counts from zero.
                pg0 = cpu_by_pid(pids_named("postgres"))
                rd0 = run_delay_s(a.gw_pid) if a.gw_pid else 0
                c0 = (cpu_s([a.gw_pid]) if a.gw_pid else 0, 0, cpu_s(gw_ng), sys_busy(), time.time())
                res = asyncio.run(fixed_rate(url, key, a.model, rate, a.duration, a.conns, prefix, a.warm))
                pg1 = cpu_by_pid(pids_named("postgres"))
                c1 = (cpu_s([a.gw_pid]) if a.gw_pid else 0, sum(v - pg0.get(p, 0) for p, v in pg1.items()),
                      cpu_s(gw_ng), sys_busy(), time.time())
                rd = (run_delay_s(a.gw_pid) - rd0) if a.gw_pid else 0
                wall = c1[4] - c0[4]
                gw, pgc, ngc, busy = (c1[i] - c0[i] for i in range(4))
                ans = max(res["answered"], 1)   # CPU is counted over the warm-up too
                row = {"kind": "latency", "label": a.label, "target": name, "rate": rate, "round": r,
                       "conns": a.conns, "duration": a.duration, **res,
                       "gw_cpu_us_per_req": gw * 1e6 / ans if name == "gateway" else None,
                       "pg_cpu_us_per_req": pgc * 1e6 / ans, "nginx_cpu_us_per_req": ngc * 1e6 / ans,
                       "gw_runq_wait_us_per_req": rd * 1e6 / ans if name == "gateway" else None,
                       "busy_cores": busy / wall, "time": time.strftime("%Y-%m-%d %H:%M:%S")}
                if name == "gateway":
                    total_gw += res["answered"]
                emit(a.out, row)
                log(f"latency {a.label} {name} {rate}/s round {r}: achieved {res['achieved_rps']:.0f}/s, "
                    f"p50/p90/p99 {fmt(res['lat_ms']['p50'], 3)}/{fmt(res['lat_ms']['p90'], 3)}/"
                    f"{fmt(res['lat_ms']['p99'], 3)} ms, failed {res['fails'] or 'none'}")
    if a.psql and a.run_id:
        emit(a.out, {"kind": "latency_log", "label": a.label, "run_id": a.run_id,
                     "answered": total_gw, **count_rows(a.psql, a.run_id + "-", total_gw, a.rows_timeout)})
    return 0


# ---------------------------------------------------------------- output
def emit(path, row):
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")


def fmt(x, nd=1):
    return "-" if x is None else f"{x:,.{nd}f}"


def sgn(x, nd=3):
    return "-" if x is None else f"{x:+,.{nd}f}"


def summary(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    out = []
    bursts = [r for r in rows if r["kind"] == "burst"]
    if bursts:
        out += ["### Concurrent burst (all connections opened first, then one request on each at once)", "",
                "| target | connections opened | concurrent | answered | failed | connect phase "
                "| wall, first send → last answer | p50 / p90 / p99 / max (ms) | gateway peak fds / RSS "
                "| listen backlog | ListenOverflows / SYN retrans | log rows / answered |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for b in bursts:
            L, pk, lg, nt = b["lat_ms"], b.get("gw_peak") or {}, b.get("log") or {}, b["net"]
            fails = ", ".join(f"{k} {v:,}" for k, v in sorted(b["fails"].items())) or "0"
            rows_s = (f"{lg['rows']:,} / {b['answered']:,}" + ("" if lg["rows"] == b["answered"] else " **≠**")
                      if "rows" in lg else (lg.get("error", "-")))
            opened = f"{b['connect_batch']} at a time" if b.get("connect_batch") else "all at once"
            out.append(f"| {b['label']} | {opened} | {b['n']:,} | **{b['answered']:,}** ({100 * b['answered'] / b['n']:.2f}%) "
                       f"| {fails} | {b['connect_phase_s']:.2f} s | **{fmt(b['wall_s'], 3)} s** "
                       f"| {fmt(L['p50'])} / {fmt(L['p90'])} / {fmt(L['p99'])} / {fmt(L['max'])} "
                       f"| {pk.get('fds', '-')} / {fmt(pk['rss_kib'] / 1024) if pk.get('rss_kib') else '-'} MiB "
                       f"| {b['listen_backlog']} | {nt.get('TcpExt:ListenOverflows', 0):,} / "
                       f"{nt.get('TcpExt:TCPSynRetrans', 0):,} | {rows_s} |")
        out.append("")
    lat = [r for r in rows if r["kind"] == "latency"]
    if lat:
        out += ["### Added latency at a fixed rate (keep-alive connections; medians over rounds)", "",
                "| gateway | rate | achieved direct / gateway | direct p50 / p90 / p99 (ms) | gateway p50 / p90 / p99 (ms) "
                "| **added p50 / p99** | gateway CPU µs/req | postgres CPU µs/req | failed |",
                "|---|---|---|---|---|---|---|---|---|"]
        med = lambda xs: statistics.median([x for x in xs if x is not None]) if [x for x in xs if x is not None] else None
        for label in dict.fromkeys(r["label"] for r in lat):
            for rate in dict.fromkeys(r["rate"] for r in lat if r["label"] == label):
                sel = lambda t: [r for r in lat if r["label"] == label and r["rate"] == rate and r["target"] == t]
                d, g = sel("direct"), sel("gateway")
                m = lambda rs, k: med([r["lat_ms"][k] for r in rs])
                dp, gp = {k: m(d, k) for k in ("p50", "p90", "p99")}, {k: m(g, k) for k in ("p50", "p90", "p99")}
                add = lambda k: None if dp[k] is None or gp[k] is None else gp[k] - dp[k]
                nf = sum(sum(r["fails"].values()) for r in d + g)
                out.append(f"| {label} | {rate:,}/s | {fmt(med([r['achieved_rps'] for r in d]), 0)} / "
                           f"{fmt(med([r['achieved_rps'] for r in g]), 0)} "
                           f"| {fmt(dp['p50'], 3)} / {fmt(dp['p90'], 3)} / {fmt(dp['p99'], 3)} "
                           f"| {fmt(gp['p50'], 3)} / {fmt(gp['p90'], 3)} / {fmt(gp['p99'], 3)} "
                           f"| **{sgn(add('p50'))} / {sgn(add('p99'))} ms** "
                           f"| {fmt(med([r['gw_cpu_us_per_req'] for r in g]), 0)} "
                           f"| {fmt(med([r['pg_cpu_us_per_req'] for r in g]), 0)} | {nf} |")
        out.append("")
        for lg in (r for r in rows if r["kind"] == "latency_log"):
            if "rows" in lg:
                out.append(f"Request log ({lg['label']}): {lg['rows']:,} rows for {lg['answered']:,} answered requests "
                           f"through the gateway ({'equal' if lg['rows'] == lg['answered'] else '**not equal**'}; "
                           f"settled after {lg['settled_s']} s).")
            else:
                out.append(f"Request log ({lg['label']}): could not count ({lg.get('error')}).")
        out.append("")
    print("\n".join(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--key", default=os.environ.get("CHERRYPICK_MASTER_KEY"), help="bearer key for the gateway")
    common.add_argument("--model", default="bench-model")
    common.add_argument("--run-id", default="", help="x-request-id prefix (unique per run); empty: no header")
    common.add_argument("--gw-pid", type=int, help="gateway pid: fd limit, CPU, peak fds/RSS")
    common.add_argument("--psql", help="PostgreSQL URL of the gateway's store: count the request log rows")
    common.add_argument("--rows-timeout", type=float, default=60)
    common.add_argument("--label", default="")
    common.add_argument("--out", help="append one JSON line per measurement here")
    b = sub.add_parser("burst", parents=[common])
    b.add_argument("--url", required=True)
    b.add_argument("--n", type=int, default=10_000)
    b.add_argument("--procs", type=int, default=1, help="client processes (each opens n/procs connections)")
    b.add_argument("--connect-timeout", type=float, default=60)
    b.add_argument("--connect-batch", type=int, default=0,
                   help="0: open all connections at once; B: B at a time, each batch accepted before the next")
    b.add_argument("--timeout", type=float, default=120, help="seconds to wait for the answers after sending")
    lt = sub.add_parser("latency", parents=[common])
    lt.add_argument("--direct-url", required=True)
    lt.add_argument("--gateway-url", required=True)
    lt.add_argument("--rates", type=lambda s: [int(x) for x in s.split(",")], default=[500, 1000, 2000])
    lt.add_argument("--duration", type=float, default=10)
    lt.add_argument("--rounds", type=int, default=2)
    lt.add_argument("--conns", type=int, default=32)
    lt.add_argument("--warm", type=float, default=1, help="seconds at the rate before recording, per run")
    s = sub.add_parser("summary")
    s.add_argument("raw")
    a = ap.parse_args()
    # No collector pauses inside a measurement (the driver allocates little that is cyclic).
    gc.disable()
    if a.cmd == "summary":
        return summary(a.raw)
    if a.cmd == "burst":
        if not a.label:
            a.label = a.url
        return burst(a)
    if not a.key:
        sys.exit("--key or CHERRYPICK_MASTER_KEY is needed for the gateway")
    return latency(a)


if __name__ == "__main__":
    sys.exit(main())
