"""Load on `tokmem serve` over loopback (issue 16's figures), bounded in count and time.

    python bench/serve_load.py [--bank tools/banks/demo] [--clients 16] [--per-client 10] [--json out.json]

1. Starts ``tokmem serve BANK`` as a subprocess on 127.0.0.1 (a free port) and sends every request once, one
   at a time: the baseline, and each request's reference answer.
2. Sends the same requests from ``--clients`` concurrent clients, ``--per-client`` each: requests/s, p50/p95
   latency, errors, and answers that differ from the reference (an answer mixed up between clients would).
3. Over capacity: a second server with ``--small-queue`` waiting places gets ``--burst`` requests at once,
   ``--bursts`` times: how many are refused with 429 (and not timed out), and the server's resident memory
   after each burst.

The requests are the pack's hand-written ones (bench/data/pack_requests*.jsonl), each with every tool of the
bank in ``tools``, ``max_tokens`` ``--max-tokens``. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx

from tokmem_agent.config import fast_bf16_available
from tokmem_agent.serialization import read_config

DATA = [ROOT / "bench/data/pack_requests.jsonl", ROOT / "bench/data/pack_requests_b.jsonl",
        ROOT / "bench/data/pack_requests_c.jsonl"]
DEADLINE_S = 1800  # the whole benchmark stops sending after this


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, bank: str, *, batch_size: int, max_queue: int, max_tokens: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "tokmem_agent", "serve", bank, "--host", "127.0.0.1",
                                      "--port", str(self.port), "--batch-size", str(batch_size), "--max-queue",
                                      str(max_queue), "--max-tokens", str(max_tokens), "--device", "cpu"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 300
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited: {self.proc.stdout.read() if self.proc.stdout else ''}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                self.proc.kill()
                raise SystemExit("the server did not come up in 300 s")
            time.sleep(0.5)

    def rss_mib(self) -> float:
        with open(f"/proc/{self.proc.pid}/status", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def answer(body: dict) -> tuple:
    m = body["choices"][0]["message"]
    return (m.get("content") or "", tuple((c["function"]["name"], c["function"]["arguments"])
                                          for c in m.get("tool_calls") or []))


def send(client: httpx.Client, url: str, payload: dict) -> tuple[int, float, dict | None]:
    t0 = time.perf_counter()
    try:
        r = client.post(url + "/v1/chat/completions", json=payload, timeout=300)
    except httpx.HTTPError as exc:
        return -1, time.perf_counter() - t0, {"error": str(exc)}
    return r.status_code, time.perf_counter() - t0, r.json() if r.headers.get("content-type", "").startswith(
        "application/json") else None


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bank", default="tools/banks/demo")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--per-client", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--small-queue", type=int, default=4)
    ap.add_argument("--burst", type=int, default=48)
    ap.add_argument("--bursts", type=int, default=3)
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    t_start = time.time()
    tools = [{"type": "function", "function": {"name": t["name"], "description": t.get("description", ""),
                                               "parameters": t["parameters"]}} for t in read_config(a.bank)["tools"]]
    queries = [json.loads(line)["query"] for p in DATA for line in p.read_text().splitlines() if line.strip()]
    n = a.clients * a.per_client
    payloads = [{"model": "demo", "messages": [{"role": "user", "content": queries[i % len(queries)]}],
                 "tools": tools, "max_tokens": a.max_tokens} for i in range(n)]
    cpu = "AVX512-BF16" if fast_bf16_available() else "no AVX512-BF16 (AVX2)"
    print(f"{n} requests ({len({p['messages'][0]['content'] for p in payloads})} distinct), {len(tools)} tools, "
          f"max_tokens {a.max_tokens}; {cpu}, {os.cpu_count()} cores", flush=True)
    figures: dict = {"n": n, "clients": a.clients, "batch_size": a.batch_size, "cpu": cpu,
                     "max_tokens": a.max_tokens}

    srv = Server(a.bank, batch_size=a.batch_size, max_queue=max(64, n), max_tokens=a.max_tokens)
    try:
        with httpx.Client() as c:
            t0 = time.perf_counter()
            seq = [send(c, srv.url, p) for p in payloads if time.time() - t_start < DEADLINE_S]
            t_seq = time.perf_counter() - t0
        ref = {i: answer(b) for i, (code, _, b) in enumerate(seq) if code == 200 and b}
        lat_seq = [s for code, s, _ in seq if code == 200]
        print(f"one at a time: {len(seq)} requests in {t_seq:.1f} s = {len(seq) / t_seq:.2f} req/s; latency p50 "
              f"{pct(lat_seq, .5):.2f} s, p95 {pct(lat_seq, .95):.2f} s; errors {len(seq) - len(lat_seq)}", flush=True)

        def client(k: int) -> list[tuple[int, int, float, dict | None]]:
            out = []
            with httpx.Client() as c:
                for j in range(a.per_client):
                    i = k * a.per_client + j
                    if time.time() - t_start > DEADLINE_S:
                        break
                    out.append((i, *send(c, srv.url, payloads[i])))
            return out

        t0 = time.perf_counter()
        with ThreadPoolExecutor(a.clients) as pool:
            conc = [r for rs in pool.map(client, range(a.clients)) for r in rs]
        t_conc = time.perf_counter() - t0
        ok = [(i, s, b) for i, code, s, b in conc if code == 200 and b]
        lat = [s for _, s, _ in ok]
        differ = sum(1 for i, _, b in ok if i in ref and answer(b) != ref[i])
        print(f"{a.clients} clients: {len(conc)} requests in {t_conc:.1f} s = {len(conc) / t_conc:.2f} req/s "
              f"({t_seq / t_conc:.2f}x); latency p50 {pct(lat, .5):.2f} s, p95 {pct(lat, .95):.2f} s; errors "
              f"{len(conc) - len(ok)}; answers differing from one-at-a-time {differ}", flush=True)
        figures.update({"sequential": {"seconds": t_seq, "req_per_s": len(seq) / t_seq, "p50_s": pct(lat_seq, .5),
                                       "p95_s": pct(lat_seq, .95), "errors": len(seq) - len(lat_seq)},
                        "concurrent": {"seconds": t_conc, "req_per_s": len(conc) / t_conc, "p50_s": pct(lat, .5),
                                       "p95_s": pct(lat, .95), "errors": len(conc) - len(ok),
                                       "differing_answers": differ, "throughput_ratio": t_seq / t_conc}})
    finally:
        srv.close()

    small = Server(a.bank, batch_size=a.batch_size, max_queue=a.small_queue, max_tokens=a.max_tokens)
    try:
        rss = [small.rss_mib()]
        bursts = []
        for b in range(a.bursts):
            if time.time() - t_start > DEADLINE_S:
                break
            with httpx.Client(limits=httpx.Limits(max_connections=a.burst)) as c, ThreadPoolExecutor(a.burst) as pool:
                t0 = time.perf_counter()
                res = list(pool.map(lambda p: send(c, small.url, p), payloads[b * a.burst:(b + 1) * a.burst]
                                    or payloads[:a.burst]))
                took = time.perf_counter() - t0
            codes = [code for code, _, _ in res]
            refused = [s for code, s, _ in res if code == 429]
            rss.append(small.rss_mib())
            bursts.append({"sent": len(res), "ok": codes.count(200), "refused_429": codes.count(429),
                           "other": len(res) - codes.count(200) - codes.count(429), "seconds": took,
                           "refusal_latency_max_s": max(refused) if refused else None, "rss_mib_after": rss[-1]})
            print(f"burst {b + 1}: {len(res)} at once on batch {a.batch_size} + queue {a.small_queue}: "
                  f"{codes.count(200)} answered, {codes.count(429)} refused with 429"
                  + (f" (in ≤ {max(refused):.2f} s)" if refused else "")
                  + f", {bursts[-1]['other']} other; server RSS {rss[-1]:.0f} MiB", flush=True)
        figures["over_capacity"] = {"max_queue": a.small_queue, "bursts": bursts, "rss_mib_start": rss[0]}
        print(f"server RSS: {' → '.join(f'{x:.0f}' for x in rss)} MiB")
    finally:
        small.close()
    if a.json:
        Path(a.json).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
