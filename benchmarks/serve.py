"""`attnlab serve` under load: concurrent streaming clients against `attnlab generate`'s own speed.

One gpt-mini run (the weights do not matter for speed), served by `attnlab serve` in its own
process on 127.0.0.1. For 1, 4 and 16 clients at once, each streams a 100-token completion from
`POST /v1/completions` (server-sent events): time to the first token, tokens/s per client and in
total, failed requests. The baseline in the same script: `attnlab generate`'s sampler in this
process, the same model and length (tokens/s). Then 500 short requests: the server's resident
memory after 50 and after 500 (a leak would grow it).

Requests to one model are served one at a time (a lock per model: one KV cache is never shared),
so the total is the server's speed and each of N clients gets about 1/N of it.

    python benchmarks/serve.py
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import machine, report

NAME = "serve"
TITLE = "attnlab serve: concurrent streaming clients vs attnlab generate (gpt-mini)"
TOKENS = 100
CLIENTS = (1, 4, 16)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def request(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, Any]:
    """(status, parsed JSON) of one request to the server (the standard library only)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        connection.request(method, path, body=json.dumps(body) if body is not None else None,
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def stream_one(port: int, model: str, seed: int) -> dict[str, Any]:
    body = {"model": model, "prompt": "Friends, Romans", "max_tokens": TOKENS, "temperature": 0.8, "seed": seed,
            "stream": True}
    start, first, pieces = time.perf_counter(), None, 0
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        connection.request("POST", "/v1/completions", body=json.dumps(body),
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        if response.status != 200:
            return {"ok": False}
        for raw in response:
            line = raw.decode("utf-8").strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            text = json.loads(line[6:])["choices"][0].get("text", "")
            if text:
                pieces += len(text)  # a character model: one character a token
                first = first if first is not None else time.perf_counter() - start
    except Exception:  # noqa: BLE001 - a failed request is counted, not raised
        return {"ok": False}
    finally:
        connection.close()
    total = time.perf_counter() - start
    return {"ok": True, "ttft": first or total, "seconds": total, "tokens": pieces}


def load(port: int, model: str, clients: int) -> dict[str, Any]:
    results: list[dict[str, Any]] = [{} for _ in range(clients)]

    def run(i: int) -> None:
        results[i] = stream_one(port, model, seed=i)

    start = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ok = [r for r in results if r.get("ok")]
    return {"clients": clients, "failed": clients - len(ok),
            "ttft_median_s": round(statistics.median(r["ttft"] for r in ok), 3) if ok else None,
            "tokens_per_s_per_client": round(statistics.median(r["tokens"] / r["seconds"] for r in ok), 1) if ok
            else None,
            "tokens_per_s_total": round(sum(r["tokens"] for r in ok) / wall, 1)}


def baseline_tokens_per_s(run_dir: Path) -> float:
    from attnlab.api import load_run
    from attnlab.inference.sampling import SamplingConfig, generate_ids

    run = load_run(run_dir)
    prompt = run.tokenizer.encode("Friends, Romans")
    generate_ids(run.model, prompt, SamplingConfig(max_new_tokens=10, seed=0))  # warm-up
    times = []
    for seed in range(3):
        start = time.perf_counter()
        generate_ids(run.model, prompt, SamplingConfig(max_new_tokens=TOKENS, temperature=0.8, seed=seed))
        times.append(time.perf_counter() - start)
    return TOKENS / statistics.median(times)


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    info = machine()
    print(f"{TITLE}\n")
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "gpt-mini"
        subprocess.run([sys.executable, "-m", "attnlab", "train", "gpt", "--preset", "gpt-mini", "--steps", "2",
                        "--set", "eval_iters=1", "--out", str(run_dir), "--quiet", "--no-sample", "--log", "none"],
                       check=True)
        baseline = baseline_tokens_per_s(run_dir)
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "attnlab", "serve", str(run_dir), "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(600):
                try:
                    if request(port, "GET", "/health")[0] == 200:
                        break
                except OSError:
                    time.sleep(0.1)
            models = request(port, "GET", "/v1/models")[1]["data"]
            model = next(m["id"] for m in models if m["id"] != "eliza")
            stream_one(port, model, seed=0)  # the first request loads the run: not part of the timing
            rows = [load(port, model, n) for n in CLIENTS]
            for row in rows:
                print(json.dumps(row), flush=True)
            short = {"model": model, "prompt": "Friends", "max_tokens": 5, "seed": 1}
            failed, memory = 0, {}
            for i in range(1, 501):
                failed += request(port, "POST", "/v1/completions", short)[0] != 200
                if i in (50, 500):
                    memory[i] = round(rss_mb(server.pid), 1)
        finally:
            server.terminate()
            server.wait(timeout=30)
    result = {"machine": info, "command": "python benchmarks/serve.py", "baseline_tokens_per_s": round(baseline, 1),
              "load": rows, "short_requests_failed": failed, "rss_mb_after": memory}
    report(NAME, None, result, markdown)


def markdown(result: dict[str, Any]) -> str:
    base = result["baseline_tokens_per_s"]
    lines = [f"`attnlab generate` (same model, this process): {base:,.0f} tokens/s", "",
             "| clients | failed | time to first token (median) | tokens/s per client | tokens/s total "
             "| total / generate |",
             "|---|---|---|---|---|---|"]
    for row in result["load"]:
        lines.append(f"| {row['clients']} | {row['failed']} | {row['ttft_median_s']} s | "
                     f"{row['tokens_per_s_per_client']} | {row['tokens_per_s_total']} | "
                     f"{row['tokens_per_s_total'] / base:.2f}x |")
    mem = {int(k): v for k, v in result["rss_mb_after"].items()}  # JSON keys are strings
    lines.append("")
    lines.append(f"500 short requests: {result['short_requests_failed']} failed; server memory "
                 f"{mem.get(50)} MB after 50, {mem.get(500)} MB after 500")
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
