"""Run every benchmark and rewrite its table in BENCHMARKS.md.

Each benchmark is a script ``benchmarks/<name>.py`` that writes ``benchmarks/results/<name>.json``
and defines ``NAME``, ``TITLE``, ``COMMAND`` and ``markdown(result) -> str``. This script runs each
in its own process (one after the other, never side by side), then replaces the text between
``<!-- bench:<name> start -->`` and ``<!-- bench:<name> end -->`` in BENCHMARKS.md with the table,
the exact command and the machine it ran on; a benchmark without markers yet gets a new section
at the end. Text outside the markers is left alone.

    python benchmarks/run_all.py                     # everything (about 40 minutes on 2 quiet cores)
    python benchmarks/run_all.py --quick             # fewer rounds and lengths
    python benchmarks/run_all.py --only train_gpt,generate --threads 1
    python benchmarks/run_all.py --skip speedrun,train_loss      # leave out the long ones
    python benchmarks/run_all.py --render-only       # rebuild BENCHMARKS.md from the JSON files
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

from common import ROOT, describe, read_result, write_result

HERE = Path(__file__).resolve().parent
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
# name: (extra arguments of a full run, of a --quick run, accepts --threads)
PLAN: dict[str, tuple[list[str], list[str], bool]] = {
    "train_gpt": ([], ["--rounds", "3"], True),
    "gpt_sizes": ([], ["--steps", "3"], True),
    "attention_layer": ([], ["--lengths", "128,512,1024,2048", "--repeats", "3"], True),
    "generate": ([], ["--rounds", "1"], True),
    "scaling": ([], ["--steps", "20", "--rounds", "1"], False),
    "train_loss": ([], ["--steps", "500"], True),
    "prepare": ([], ["--sizes", "10MB", "--bpe-max", "10MB"], False),
    "train_from_shards": ([], ["--sizes", "10MB"], False),
    "serve": ([], [], False),
    "main_job": ([], ["--plays", "julius-caesar", "--no-samples"], False),
}
HEADER = """# Benchmarks

Every table below is written by `python benchmarks/run_all.py` from the JSON files in
`benchmarks/results/`; each section names the command that produced it and the machine it ran
on. Every benchmark runs its baseline in the same process (or, for scaling, the same session),
in turns with the candidates, and reports medians. Text outside the `<!-- bench:... -->` markers
is kept when the tables are rewritten.
"""


def load_module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def discover() -> list[str]:
    """Our benchmarks first, then any other script here that follows the same convention."""
    names = list(PLAN)
    for path in sorted(HERE.glob("*.py")):
        if path.stem in names or path.stem in ("common", "run_all"):
            continue
        text = path.read_text(encoding="utf-8")
        if re.search(r"^def markdown\(", text, re.M) and re.search(r"^NAME = ", text, re.M):
            names.append(path.stem)
    return names


def run_one(name: str, quick: bool, threads: int | None) -> str:
    full, short, takes_threads = PLAN.get(name, ([], [], False))
    args = list(short if quick else full)
    if threads and takes_threads:
        args += ["--threads", str(threads)]
    cmd = [sys.executable, str(HERE / f"{name}.py"), *args]
    shown = " ".join(["python", f"benchmarks/{name}.py", *args])
    print(f"\n=== {shown}", flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True)
    print(f"=== {name}: {time.perf_counter() - start:.0f} s", flush=True)
    result = read_result(name)
    if result is not None:
        result["command"] = shown
        write_result(name, result)
    return shown


def section(name: str, module: ModuleType, result: dict) -> str:
    command = result.get("command") or module.COMMAND
    body = (f"Command: `{command}`  \nMachine: {describe(result['machine'])}  \n"
            f"Results: `benchmarks/results/{name}.json`\n\n{module.markdown(result)}")
    return f"<!-- bench:{name} start -->\n{body}\n<!-- bench:{name} end -->"


def rewrite(text: str, name: str, title: str, block: str) -> str:
    key = re.escape(name)
    pattern = re.compile(rf"<!-- bench:{key} start -->.*?<!-- bench:{key} end -->", re.S)
    if pattern.search(text):
        return pattern.sub(lambda _: block, text, count=1)
    return text.rstrip("\n") + f"\n\n## {title}\n\n{block}\n"


def render(names: list[str]) -> None:
    text = BENCHMARKS_MD.read_text(encoding="utf-8") if BENCHMARKS_MD.is_file() else HEADER
    for name in names:
        result = read_result(name)
        if result is None:
            print(f"no results for {name} yet; its section is left as it was")
            continue
        module = load_module(name)
        text = rewrite(text, name, module.TITLE, section(name, module, result))
    tmp = BENCHMARKS_MD.with_name(".BENCHMARKS.md.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, BENCHMARKS_MD)
    print(f"\nrewrote {BENCHMARKS_MD}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help="comma-separated benchmark names")
    parser.add_argument("--skip", default="", help="comma-separated benchmark names to leave out")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, lengths and steps")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads for the single-process benchmarks (default: torch's own)")
    parser.add_argument("--render-only", action="store_true", help="only rebuild BENCHMARKS.md from the JSON")
    args = parser.parse_args(argv)
    names = discover()
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(names)}")
        names = wanted
    names = [n for n in names if n not in {s.strip() for s in args.skip.split(",")}]
    if not args.render_only:
        for name in names:
            run_one(name, args.quick, args.threads)
    render(names)
    print(json.dumps({"rendered": names}))


if __name__ == "__main__":
    main()
