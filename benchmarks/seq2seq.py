"""RNN encoder-decoders on translation: accuracy within a time budget, and training throughput.

Two measurements, each in one run:

``accuracy`` (the issue's target): train a Bahdanau GRU (bidirectional encoder + additive
attention) and a no-attention GRU encoder-decoder of the same size (``--preset``) on
``dates-fr-en`` for the same time budget each (default 600 s of training), then translate the
whole test split greedily and report exact match, CER and BLEU. The budget is counted in CPU
seconds of the (single-threaded) process by default, which is what the run would take on an idle
core however busy the shared machine is (``--clock wall`` counts wall time instead). The number of
steps is set from a short calibration so that the cosine schedule ends when the budget does;
training stops at the budget in any case.

``throughput``: training tokens/s (real target tokens, forward + backward + AdamW step) of three
decoders on the same batches, timed in interleaved rounds: the fast Bahdanau decoder (keys ``U h_j``
precomputed once per sentence), the scratch one (:mod:`attnlab.scratch.bahdanau`, ``U h_j``
recomputed every decoder step; same weights, so the same outputs) and the no-attention decoder.

    python benchmarks/seq2seq.py throughput
    python benchmarks/seq2seq.py accuracy --budget 600
    python benchmarks/seq2seq.py accuracy --budget 60 --n-pairs 5000     # a quick look

Results go to ``benchmarks/results/seq2seq_<what>.json``. Small RNNs are dominated by per-operation
overhead, so ``--threads 1`` (the default) is as fast as two threads and far steadier on a shared
machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from common import RESULTS, describe, interleaved, machine, median, table, write_result  # noqa: E402

from attnlab.data.tasks import load_task  # noqa: E402
from attnlab.data.tokenizers import SEQ2SEQ_SPECIALS, make_tokenizer  # noqa: E402
from attnlab.equivalence import use_scratch_attention  # noqa: E402
from attnlab.evaluation import translation_metrics  # noqa: E402
from attnlab.inference.translate import Translator, alignment  # noqa: E402
from attnlab.models.seq2seq import Seq2Seq, preset_config  # noqa: E402
from attnlab.models.transformer import PRESETS as TRANSFORMER_PRESETS  # noqa: E402
from attnlab.models.transformer import Transformer, TransformerConfig  # noqa: E402
from attnlab.recipes.translation import DATA_SEED, SmoothedTranslationObjective, TranslationObjective  # noqa: E402
from attnlab.training.trainer import TrainConfig, Trainer  # noqa: E402
from attnlab.viz.heatmaps import plot_alignment  # noqa: E402

MODELS = {  # name -> (cell, attention)
    "bahdanau-gru": ("gru", "bahdanau"),
    "gru-no-attention": ("gru", "none"),
    "bahdanau-lstm": ("lstm", "bahdanau"),
    "lstm-no-attention": ("lstm", "none"),
    "bahdanau-rnn": ("rnn", "bahdanau"),
    "rnn-no-attention": ("rnn", "none"),
}
# the 2017 Transformer, in its `small` preset (or --preset, if it names a Transformer preset),
# trained with its own recipe: a post-norm Transformer wants a gentler rate and a longer warm-up
TRANSFORMER = "transformer"
TRANSFORMER_TRAIN = dict(lr=2e-3, schedule="inverse_sqrt", beta2=0.98, grad_clip=1.0)


def prepare(task: str, n_pairs: int, k: int, tokenizer: str) -> tuple[Any, Any, Any]:
    data = load_task(task, n_pairs=n_pairs, k=k, seed=DATA_SEED)
    data.spec = {"task": task, "n_pairs": n_pairs, "k": k, "tokenizer": tokenizer}
    src = make_tokenizer(tokenizer, data.text("source"), specials=SEQ2SEQ_SPECIALS)
    tgt = make_tokenizer(tokenizer, data.text("target"), specials=SEQ2SEQ_SPECIALS)
    return data, src, tgt


def build_model(name: str, preset: str, src: Any, tgt: Any, longest: int, seed: int, longest_source: int = 0,
                **extra: Any) -> Seq2Seq | Transformer:
    """``longest``: the longest target in tokens (sets the decoding limit); ``longest_source`` matters
    only to the Transformer (its position table must cover both sides)."""
    if name == TRANSFORMER:
        torch.manual_seed(seed)
        values = {**TRANSFORMER_PRESETS[preset if preset in TRANSFORMER_PRESETS else "small"], **extra}
        return Transformer(TransformerConfig(
            **values, src_vocab_size=src.vocab_size, tgt_vocab_size=tgt.vocab_size, pad_id=tgt.pad_id,
            bos_id=tgt.bos_id, eos_id=tgt.eos_id, context_length=max(256, 2 * max(longest + 1, longest_source)),
            max_target_len=int(1.25 * longest) + 5))
    cell, attention = MODELS[name]
    torch.manual_seed(seed)
    config = preset_config(preset, cell=cell, attention=attention, src_vocab_size=src.vocab_size,
                           tgt_vocab_size=tgt.vocab_size, pad_id=tgt.pad_id, bos_id=tgt.bos_id,
                           eos_id=tgt.eos_id, max_target_len=int(1.25 * longest) + 5, **extra)
    return Seq2Seq(config)


def clock(kind: str) -> float:
    """``cpu``: this process's CPU seconds (with one thread: the wall time an idle core would take, whatever
    else the machine runs); ``wall``: wall-clock seconds."""
    return time.process_time() if kind == "cpu" else time.perf_counter()


def train_and_score(name: str, data: Any, src: Any, tgt: Any, *, preset: str, budget: float, batch_size: int,
                    lr: float, seed: int = 0, eval_limit: int | None = None, run_dir: Path | None = None,
                    budget_clock: str = "cpu", log: bool = True) -> dict[str, Any]:
    """Train model ``name`` for ``budget`` seconds of ``budget_clock``; score greedy test translations."""
    every_pair = [p for split in ("train", "val", "test") for p in data.split(split)]
    longest = max(len(tgt.encode(t)) for _, t in every_pair)
    longest_source = max(len(src.encode(s)) for s, _ in every_pair)
    model = build_model(name, preset, src, tgt, longest, seed, longest_source=longest_source)
    splits = {"train": data.train, "val": data.val}
    if name == TRANSFORMER:
        objective = SmoothedTranslationObjective(splits, src, tgt, seed=seed,
                                                 label_smoothing=model.config.label_smoothing)
        recipe = {**TRANSFORMER_TRAIN}
    else:
        objective = TranslationObjective(splits, src, tgt, seed=seed)
        recipe = {"lr": lr}
    # calibrate: seconds per step, so that the cosine schedule ends when the budget does
    probe = build_model(name, preset, src, tgt, longest, seed, longest_source=longest_source)
    probe_config = TrainConfig(steps=12, batch_size=batch_size, warmup_steps=1, eval_every=10_000,
                               eval_iters=1, **recipe)
    probe_trainer = Trainer(probe, objective, probe_config, progress=False)
    for _ in range(2):
        probe_trainer.train_step()
    start = clock(budget_clock)
    for _ in range(8):
        probe_trainer.train_step()
    per_step = (clock(budget_clock) - start) / 8
    steps = max(50, int(0.97 * budget / per_step))
    warmup = min(300, steps // 5) if name == TRANSFORMER else min(100, steps // 10)
    config = TrainConfig(steps=steps, batch_size=batch_size, warmup_steps=warmup, eval_iters=10,
                         weight_decay=0.01, seed=seed, **recipe)
    files = {"src_tokenizer.json": src.save, "tgt_tokenizer.json": tgt.save} if run_dir else None
    kind = TRANSFORMER if name == TRANSFORMER else "bahdanau" if model.attends else f"seq2seq-{model.config.cell}"
    run_info = {"kind": kind, "args": dict(data.spec), "data_seed": DATA_SEED,
                "benchmark": "benchmarks/seq2seq.py"} if run_dir else None
    trainer = Trainer(model, objective, config, run_dir=run_dir, files=files, run_info=run_info,
                      progress=False)
    cpu0, wall0 = clock("cpu"), clock("wall")
    began = clock(budget_clock)
    replan_at = max(20, steps // 10)
    while trainer.step < trainer.config.steps and clock(budget_clock) - began < budget:
        trainer.train_step()
        if trainer.step == replan_at:  # re-measure once warm; the cosine schedule follows config.steps
            used = clock(budget_clock) - began
            trainer.config.steps = max(trainer.step + 1, trainer.step + int(0.98 * (budget - used) * trainer.step
                                                                          / used))
    cpu_seconds, wall_seconds = clock("cpu") - cpu0, clock("wall") - wall0
    val_loss = trainer.evaluate("val")
    trainer.last_val = val_loss
    trainer.save_checkpoint()
    pairs = data.test[:eval_limit]
    translator = Translator(model.eval(), src, tgt)
    start = time.perf_counter()
    hyps = translator.translate([s for s, _ in pairs], batch_size=500)
    decode_seconds = time.perf_counter() - start
    scores = translation_metrics(hyps, [t for _, t in pairs])
    row = {"model": name, "task": data.name, "parameters": model.parameter_count(), "steps": trainer.step,
           "planned_steps": trainer.config.steps, "budget_clock": budget_clock, "cpu_seconds": round(cpu_seconds, 1),
           "wall_seconds": round(wall_seconds, 1), "batch_size": batch_size,
           "train_pairs_seen": trainer.step * batch_size, "val_loss": round(val_loss, 5),
           "test_pairs": len(pairs), "exact_match": round(scores["exact_match"], 4),
           "cer": round(scores["cer"], 4), "bleu": round(scores["bleu"], 2),
           "decode_seconds": round(decode_seconds, 1),
           "examples": [{"source": s, "reference": t, "output": h}
                        for (s, t), h in list(zip(pairs, hyps))[:3]]}
    if log:
        print(f"  {name:<18} {data.name:<16} {trainer.step:>6} steps, {cpu_seconds:5.0f} CPU s "
              f"({wall_seconds:5.0f} wall s)  val loss {val_loss:.4f}  exact {scores['exact_match']:.2%}  "
              f"CER {scores['cer']:.2%}  BLEU {scores['bleu']:.1f}", flush=True)
    return row


# ----------------------------------------------------------------------------------------------- accuracy


def draw_alignment(run_dir: Path, text: str, out: Path) -> None:
    """The trained Bahdanau run's alignment for ``text``: the month and the day swap places."""
    src_tokens, tgt_tokens, weights = alignment(run_dir, text)
    translation = "".join(t for t in tgt_tokens if t != "<eos>")
    plot_alignment(src_tokens, tgt_tokens, weights, out,
                   title=f"Bahdanau GRU on dates-fr-en: {text!r} -> {translation!r}")
    print(f"wrote {out}")


def run_accuracy(args: argparse.Namespace) -> dict[str, Any]:
    data, src, tgt = prepare(args.task, args.n_pairs, 1, args.tokenizer)
    info = machine()
    print(f"{args.task}: {len(data.train)} train / {len(data.test)} test pairs; {args.budget:.0f} s of "
          f"training per model; {describe(info)}")
    rows = []
    for name in args.models.split(","):
        run_dir = Path(args.runs_dir) / name if args.runs_dir else None
        rows.append(train_and_score(name, data, src, tgt, preset=args.preset, budget=args.budget,
                                    batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                    eval_limit=args.eval_limit, run_dir=run_dir, budget_clock=args.clock))
    if args.runs_dir and "bahdanau-gru" in args.models.split(","):
        draw_alignment(Path(args.runs_dir) / "bahdanau-gru", args.alignment_text,
                       RESULTS / "seq2seq_alignment.png")
    print(table(["model", "params", "steps", "CPU s", "wall s", "exact match", "CER", "BLEU"],
                [[r["model"], r["parameters"], r["steps"], r["cpu_seconds"], r["wall_seconds"],
                  f"{r['exact_match']:.2%}",
                  f"{r['cer']:.2%}", r["bleu"]] for r in rows]))
    return {"benchmark": "seq2seq accuracy within a training-time budget",
            "settings": {k: v for k, v in vars(args).items() if k != "func"}, "machine": info,
            "machine_after": machine(), "results": rows}


# ----------------------------------------------------------------------------------------------- throughput


def run_throughput(args: argparse.Namespace) -> dict[str, Any]:
    data, src, tgt = prepare(args.task, 2000, args.k, args.tokenizer)
    longest = max(len(tgt.encode(t)) for _, t in data.train)
    objective = TranslationObjective({"train": data.train}, src, tgt, seed=0)
    batches = [objective.batch("train", step, args.batch_size) for step in range(args.rounds + 1)]
    candidates, counters = {}, {}
    reference = build_model("bahdanau-gru", args.preset, src, tgt, longest, 0)
    for label, name, impl in (("bahdanau fast (keys once per sentence)", "bahdanau-gru", "fast"),
                              ("bahdanau scratch (keys every step)", "bahdanau-gru", "scratch"),
                              ("no attention", "gru-no-attention", "fast")):
        model = build_model(name, args.preset, src, tgt, longest, 0)
        if name == "bahdanau-gru":
            model.load_state_dict(reference.state_dict())
        if impl == "scratch":
            use_scratch_attention(model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        counters[label] = {"i": 0, "tokens": 0}

        def step(model=model, optimizer=optimizer, label=label) -> None:
            counter = counters[label]
            batch = batches[counter["i"] % len(batches)]
            counter["i"] += 1
            loss = objective.loss(model, batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        candidates[label] = step
    info = machine()
    samples = interleaved(candidates, rounds=args.rounds, warmup=1)
    tokens = sum(objective.count_tokens(b) for b in batches) / len(batches)
    rows = []
    for label, times in samples.items():
        seconds = median(times)
        rows.append({"decoder": label, "ms_per_step": round(1000 * seconds, 2),
                     "tokens_per_s": round(tokens / seconds, 1)})
    fast, scratch = rows[0]["tokens_per_s"], rows[1]["tokens_per_s"]
    print(f"{args.task} k={args.k}, preset {args.preset}, batch {args.batch_size} ({tokens:.0f} target "
          f"tokens), median of {args.rounds} interleaved rounds; {describe(info)}")
    print(table(["decoder", "ms/step", "tokens/s"], [[r["decoder"], r["ms_per_step"], r["tokens_per_s"]]
                                                    for r in rows]))
    print(f"fast / scratch: {fast / scratch:.2f}x")
    return {"benchmark": "seq2seq training throughput, fast vs scratch Bahdanau decoder",
            "settings": {k: v for k, v in vars(args).items() if k != "func"}, "machine": info,
            "machine_after": machine(), "tokens_per_batch": tokens, "results": rows,
            "fast_over_scratch": round(fast / scratch, 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    acc = sub.add_parser("accuracy", help="Bahdanau GRU vs no-attention GRU on dates-fr-en within a budget")
    acc.add_argument("--task", default="dates-fr-en")
    acc.add_argument("--n-pairs", type=int, default=20000)
    acc.add_argument("--budget", type=float, default=600.0,
                     help="seconds of training per model (see --clock)")
    acc.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                     help="cpu: the budget is CPU seconds of this process (robust to a busy machine; with "
                          "one thread equal to wall time on an idle core); wall: wall-clock seconds")
    acc.add_argument("--models", default="bahdanau-gru,gru-no-attention",
                     help=f"from {', '.join([*MODELS, TRANSFORMER])}")
    acc.add_argument("--preset", default="small")
    acc.add_argument("--batch-size", type=int, default=64)
    acc.add_argument("--lr", type=float, default=3e-3)
    acc.add_argument("--eval-limit", type=int, default=None, help="score only the first N test pairs")
    acc.add_argument("--runs-dir", default=None,
                     help="also save each trained run here (and draw results/seq2seq_alignment.png)")
    acc.add_argument("--alignment-text", default="mercredi 9 mai 2018", help="sentence of the alignment plot")
    acc.set_defaults(func=run_accuracy)
    thr = sub.add_parser("throughput", help="training tokens/s: fast vs scratch attention decoder")
    thr.add_argument("--task", default="dates-fr-en")
    thr.add_argument("--k", type=int, default=1)
    thr.add_argument("--preset", default="small")
    thr.add_argument("--batch-size", type=int, default=64)
    thr.add_argument("--rounds", type=int, default=10)
    thr.set_defaults(func=run_throughput)
    for parser in (acc, thr):
        parser.add_argument("--tokenizer", choices=("char", "word"), default="char")
        parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--out", default=None,
                            help="JSON file (default benchmarks/results/seq2seq_<what>.json)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = args.func(args)
    path = write_result(f"seq2seq_{args.what}", result, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
