"""Accuracy against sentence length, with and without attention: the Bahdanau paper's Figure 2.

For each k in ``--ks`` (default 1, 2, 4, 8), ``dates-fr-en`` joins k dates into one sentence
("mercredi 9 mai 2018 ; lundi 1 mars 1999 ; ..."), and two models of the same size are trained for
the same budget each: the Bahdanau GRU (bidirectional encoder + additive attention, "RNNsearch")
and the GRU encoder-decoder without attention ("RNNencdec"), whose decoder only gets the encoder's
final state. Each is scored on the test split (greedy): exact match, CER and BLEU.

The budget is CPU seconds of the single-threaded process (see benchmarks/seq2seq.py): what the
run would take on an idle core, however busy the shared machine is. Word tokens by default (a
date is 4 source and 6 target tokens), so k = 8 stays affordable; ``--tokenizer char`` is the
harder, slower variant.

    python benchmarks/length_sweep.py --budget 120                   # JSON + PNG in benchmarks/results
    python benchmarks/length_sweep.py --budget 30 --ks 1,4 --n-pairs 4000   # a quick look
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from common import RESULTS, describe, machine, table, write_result  # noqa: E402
from seq2seq import MODELS, TRANSFORMER, prepare, train_and_score  # noqa: E402

LABELS = {"bahdanau-gru": "GRU + Bahdanau attention (RNNsearch)",
          "gru-no-attention": "GRU, no attention (RNNencdec)", TRANSFORMER: "Transformer (2017), preset small"}


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from attnlab.io import write_atomic

    rows = result["results"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for i, name in enumerate(dict.fromkeys(r["model"] for r in rows)):
        mine = sorted((r for r in rows if r["model"] == name), key=lambda r: r["k"])
        ks = [r["k"] for r in mine]
        # markers and dashes differ, so that two models with the same scores stay visible
        style = dict(marker="os^vD"[i % 5], linestyle=("-", "--", ":", "-.")[i % 4], markersize=7 - i,
                     label=LABELS.get(name, name))
        axes[0].plot(ks, [100 * r["exact_match"] for r in mine], **style)
        axes[1].plot(ks, [r["bleu"] for r in mine], **style)
    lengths = {r["k"]: r["mean_source_tokens"] for r in rows}
    for ax, what in zip(axes, ("exact match (%)", "BLEU")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(lengths), [f"{k}\n({lengths[k]:.0f} tok)" for k in sorted(lengths)])
        ax.set_xlabel("dates per sentence k (mean source length)")
        ax.set_ylabel(what)
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower left")
    s = result["settings"]
    fig.suptitle(f"{s['task']}, {s['tokenizer']} tokens, preset {s['preset']}: {s['budget']:.0f} CPU s of "
                 "training per model", fontsize=10)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="dates-fr-en")
    p.add_argument("--ks", default="1,2,4,8", help="comma-separated dates per sentence")
    p.add_argument("--models", default="bahdanau-gru,gru-no-attention",
                   help=f"from {', '.join([*MODELS, TRANSFORMER])}")
    p.add_argument("--budget", type=float, default=120.0, help="CPU seconds of training per model")
    p.add_argument("--n-pairs", type=int, default=20000)
    p.add_argument("--tokenizer", choices=("char", "word"), default="word")
    p.add_argument("--preset", default="small")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--eval-limit", type=int, default=500, help="test pairs scored per model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS / "length_sweep.json"),
                   help="JSON result (the PNG goes beside it)")
    p.add_argument("--add", action="store_true",
                   help="keep the other models' rows already in --out (their settings must match) and "
                        "replace only the rows of --models: adds a model to an earlier sweep")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    ks = [int(k) for k in args.ks.split(",")]
    info = machine()
    print(f"length sweep on {args.task}, k = {ks}, {args.budget:.0f} CPU s per model; {describe(info)}",
          flush=True)
    rows, earlier = [], None
    if args.add and Path(args.out).is_file():
        earlier = json.loads(Path(args.out).read_text(encoding="utf-8"))
        same = ("task", "n_pairs", "tokenizer", "budget", "eval_limit", "seed")
        changed = [key for key in same if earlier["settings"].get(key) != getattr(args, key)]
        if changed:
            p.error(f"--add: {args.out} was run with other {', '.join(changed)}; its rows would not compare")
        models = set(args.models.split(","))
        rows = [r for r in earlier["results"] if r["model"] not in models]
    for k in ks:
        data, src, tgt = prepare(args.task, args.n_pairs, k, args.tokenizer)
        mean_src = sum(len(src.encode(s)) for s, _ in data.test) / len(data.test)
        for name in args.models.split(","):
            row = train_and_score(name, data, src, tgt, preset=args.preset, budget=args.budget,
                                  batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                  eval_limit=args.eval_limit)
            row.update(k=k, mean_source_tokens=round(mean_src, 1))
            rows.append(row)
    rows.sort(key=lambda r: (r["k"], r["model"]))
    result = {"benchmark": "accuracy vs sentence length, with and without attention",
              "settings": {k: v for k, v in vars(args).items()}, "machine": info, "machine_after": machine(),
              "results": rows}
    if earlier is not None:
        result["earlier_runs"] = [{"models": sorted({r["model"] for r in rows} - set(args.models.split(","))),
                                   "machine": earlier["machine"], "settings": earlier["settings"]},
                                  *earlier.get("earlier_runs", [])]
    out = write_result("length_sweep", result, args.out)
    png = out.with_suffix(".png")
    plot(result, png)
    print(table(["k", "source tokens", "model", "steps", "exact match", "CER", "BLEU"],
                [[r["k"], r["mean_source_tokens"], r["model"], r["steps"], f"{r['exact_match']:.1%}",
                  f"{r['cer']:.1%}", r["bleu"]] for r in rows]))
    print(f"wrote {out} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
