#!/usr/bin/env python3
"""Load benchmark of `batch_forge serve` over loopback: N concurrent streaming clients.

For each concurrency level N (default 1, 16, 64) N clients start together, each streaming one
/v1/completions request with the same prompt and max_tokens (ignore_eos, so every request
generates exactly max_tokens). Reported per level: aggregate generated tokens/s (all tokens over
the wall time from the first request to the last [DONE]), time to first token and inter-token
latency (p50, p99, as the clients see them), errors; then the largest N that ran without an
error. `--json` prints one JSON object instead of the table.

Drives a running server (--url) or starts one (--model; --port 0, stopped with SIGTERM at the end).
Standard library only. Examples:

  python3 bench/serve_bench.py --model models/smollm2-135m-instruct.safetensors
  python3 bench/serve_bench.py --url http://127.0.0.1:8080 --concurrency 1,8,32 --max-tokens 128 --json
"""

import argparse
import http.client
import json
import math
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PROMPT = "Write a short story about a robot who learns to paint."


def percentile(values, q):
    """Nearest-rank percentile (q in [0, 100]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def stream_one(host, port, key, body, start_barrier):
    """One streaming request: {'ttft', 'gaps', 'tokens', 'error'} with times in seconds."""
    out = {"ttft": None, "gaps": [], "tokens": 0, "error": None}
    conn = http.client.HTTPConnection(host, port, timeout=600)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        start_barrier.wait()
        t0 = time.perf_counter()
        conn.request("POST", "/v1/completions", body=body, headers=headers)
        r = conn.getresponse()
        if r.status != 200:
            out["error"] = f"HTTP {r.status}: {r.read().decode(errors='replace')[:200]}"
            return out
        last = None
        for raw in r:  # SSE: "data: {...}" lines separated by blank lines
            line = raw.decode().strip()
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                break
            event = json.loads(data)
            if "error" in event:
                out["error"] = event["error"].get("message", "error event")
                break
            n = len(event["choices"][0].get("token_ids") or []) if event["choices"] else 0
            if n == 0:
                continue
            now = time.perf_counter()
            if last is None:
                out["ttft"] = now - t0
                # Tokens that arrive together share the wait.
                out["gaps"] += [0.0] * (n - 1)
            else:
                out["gaps"] += [(now - last) / n] * n
            last = now
            out["tokens"] += n
    except (OSError, http.client.HTTPException, json.JSONDecodeError) as e:
        out["error"] = repr(e)
    finally:
        conn.close()
    return out


def run_level(host, port, key, n, prompt, max_tokens, model):
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                       "stream": True, "ignore_eos": True, "return_token_ids": True})
    barrier = threading.Barrier(n + 1)
    results = [None] * n

    def client(i):
        results[i] = stream_one(host, port, key, body, barrier)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    tokens = sum(r["tokens"] for r in results)
    errors = [r["error"] for r in results if r["error"]]
    short = sum(1 for r in results if not r["error"] and r["tokens"] != max_tokens)
    ttfts = [r["ttft"] for r in results if r["ttft"] is not None]
    gaps = [g for r in results for g in r["gaps"]]
    return {
        "concurrency": n,
        "requests": n,
        "errors": len(errors) + short,
        "error_samples": errors[:3],
        "generated_tokens": tokens,
        "wall_seconds": wall,
        "tokens_per_second": tokens / wall if wall > 0 else 0.0,
        "ttft_p50_ms": 1e3 * percentile(ttfts, 50) if ttfts else None,
        "ttft_p99_ms": 1e3 * percentile(ttfts, 99) if ttfts else None,
        "itl_p50_ms": 1e3 * percentile(gaps, 50) if gaps else None,
        "itl_p99_ms": 1e3 * percentile(gaps, 99) if gaps else None,
    }


def get_json(host, port, key, path):
    conn = http.client.HTTPConnection(host, port, timeout=60)
    conn.request("GET", path, headers={"Authorization": f"Bearer {key}"} if key else {})
    r = conn.getresponse()
    text = r.read().decode()
    conn.close()
    if r.status != 200:
        raise SystemExit(f"serve_bench: GET {path}: HTTP {r.status}: {text}")
    return json.loads(text)


def start_server(args):
    binary = Path(args.binary)
    cmd = [str(binary), "serve", "--model", args.model, "--port", "0", *args.server_arg]
    if args.api_key:
        cmd += ["--api-key", args.api_key]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=300)
        except queue.Empty:
            proc.kill()
            raise SystemExit("serve_bench: the server printed no listening line in 300 s")
        if "listening on http://" in line:
            return proc, line.strip().rsplit(" ", 1)[1]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8080")
    where.add_argument("--model", help="start `batch_forge serve` on this model file")
    p.add_argument("--binary", default=str(ROOT / "build" / "apps" / "batch_forge"), help="with --model")
    p.add_argument("--server-arg", action="append", default=[],
                   help="extra flag for the started server (repeatable), e.g. --server-arg=--quant=q8_0")
    p.add_argument("--api-key", default="")
    p.add_argument("--concurrency", default="1,16,64", help="comma-separated client counts")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--prompt", default=DEFAULT_PROMPT)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()
    levels = [int(x) for x in args.concurrency.split(",") if x]

    proc = None
    url = args.url
    if args.model:
        proc, url = start_server(args)
    try:
        parsed = urlparse(url)
        host, port = parsed.hostname, parsed.port or 80
        model = get_json(host, port, args.api_key, "/v1/models")["data"][0]["id"]
        # Warm-up: the first request pays for page faults of the mapped weights.
        warm = run_level(host, port, args.api_key, 1, args.prompt, min(8, args.max_tokens), model)
        if warm["errors"]:
            raise SystemExit(f"serve_bench: warm-up failed: {warm['error_samples']}")
        results = [run_level(host, port, args.api_key, n, args.prompt, args.max_tokens, model) for n in levels]
    finally:
        if proc:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)

    held = max((r["concurrency"] for r in results if r["errors"] == 0), default=0)
    single = next((r for r in results if r["concurrency"] == 1), None)
    report = {"url": url, "model": model, "max_tokens": args.max_tokens, "prompt": args.prompt,
              "levels": results, "max_concurrency_without_errors": held}
    if single and single["tokens_per_second"] > 0:
        for r in results:
            r["speedup_vs_1"] = r["tokens_per_second"] / single["tokens_per_second"]
    if args.json:
        print(json.dumps(report, indent=2))
        return

    def ms(v):
        return f"{v:8.1f}" if v is not None else "       -"

    print(f"serve_bench: {url} model {model}, {args.max_tokens} tokens per request, prompt {args.prompt!r}")
    print(" clients  tokens/s   vs 1  ttft p50  ttft p99  itl p50  itl p99  errors")
    for r in results:
        speedup = f"{r['speedup_vs_1']:6.2f}" if "speedup_vs_1" in r else "     -"
        print(f"{r['concurrency']:8d} {r['tokens_per_second']:9.1f} {speedup} {ms(r['ttft_p50_ms'])}  "
              f"{ms(r['ttft_p99_ms'])} {ms(r['itl_p50_ms'])} {ms(r['itl_p99_ms'])} {r['errors']:7d}")
        for e in r["error_samples"]:
            print(f"         error: {e}")
    print(f"largest concurrency without errors: {held}")


if __name__ == "__main__":
    sys.exit(main())
