"""Transformer vs Bahdanau GRU: training tokens per second at a similar parameter count, in one run.

Both models train on the same batches of ``dates-fr-en`` (character tokens, the same tokenizers): one
optimizer step (forward, backward, AdamW) per call, timed in alternating turns (see
:func:`benchmarks.common.interleaved`); tokens are real target tokens, as the trainer counts them.
The RNN decoder must walk the target one step at a time; the Transformer decoder sees every target
position at once (teacher forcing + causal mask), so it should win per token.

It also times greedy decoding of the Transformer with and without the KV cache.

    python benchmarks/transformer.py                     # CPU, batch 64
    python benchmarks/transformer.py --device cuda --out benchmarks/results/transformer-cuda.json

Writes JSON (default ``benchmarks/results/transformer.json``) with the machine it ran on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import describe, interleaved, machine, median, table, write_result  # noqa: E402

from attnlab.data.tasks import load_task  # noqa: E402
from attnlab.data.tokenizers import SEQ2SEQ_SPECIALS, make_tokenizer  # noqa: E402
from attnlab.inference.search import decode  # noqa: E402
from attnlab.models.seq2seq import Seq2Seq  # noqa: E402
from attnlab.models.seq2seq import preset_config as seq2seq_preset  # noqa: E402
from attnlab.models.transformer import Transformer, TransformerConfig  # noqa: E402
from attnlab.recipes.translation import TranslationObjective  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=6, help="timed turns per model")
    parser.add_argument("--calls", type=int, default=5, help="training steps per turn")
    parser.add_argument("--bahdanau-preset", default="base")
    parser.add_argument("--n-embd", "--d-model", type=int, default=96, help="the Transformer's width")
    parser.add_argument("--layers", type=int, default=2, help="encoder and decoder layers of the Transformer")
    parser.add_argument("--d-ff", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    data = load_task("dates-fr-en", n_pairs=5000, seed=0)
    src_tok = make_tokenizer("char", data.text("source"), specials=SEQ2SEQ_SPECIALS)
    tgt_tok = make_tokenizer("char", data.text("target"), specials=SEQ2SEQ_SPECIALS)
    ids = dict(src_vocab_size=src_tok.vocab_size, tgt_vocab_size=tgt_tok.vocab_size, pad_id=tgt_tok.pad_id,
               bos_id=tgt_tok.bos_id, eos_id=tgt_tok.eos_id, max_target_len=48)
    torch.manual_seed(0)
    models = {
        f"bahdanau-gru ({args.bahdanau_preset})": Seq2Seq(seq2seq_preset(args.bahdanau_preset, **ids)),
        "transformer": Transformer(TransformerConfig(
            n_embd=args.n_embd, n_head=4, n_encoder_layers=args.layers, n_decoder_layers=args.layers,
            d_ff=args.d_ff, dropout=0.1, label_smoothing=0.1, context_length=128, **ids)),
    }
    objective = TranslationObjective({"train": data.train, "val": data.val}, src_tok, tgt_tok, seed=0)
    batches = [{k: v.to(device) for k, v in objective.batch("train", i, args.batch_size).items()}
               for i in range(16)]
    tokens = [objective.count_tokens(b) for b in batches]

    def trainer_step(model: torch.nn.Module):
        model.to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        counter = {"i": 0}

        def step() -> None:
            i = counter["i"] % len(batches)
            counter["i"] += 1
            loss = objective.loss(model, batches[i])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return step

    # every call walks the same batch sequence (the counters advance in step), so tokens per call match
    samples = interleaved({name: trainer_step(m) for name, m in models.items()}, rounds=args.rounds,
                          device=args.device, calls=args.calls)
    mean_tokens = sum(tokens) / len(tokens)
    results = {}
    for name, model in models.items():
        seconds = median(samples[name])
        results[name] = {"parameters": model.parameter_count(), "seconds_per_step": seconds,
                         "tokens_per_sec": mean_tokens / seconds, "samples": samples[name]}
    names = list(models)
    ratio = results["transformer"]["tokens_per_sec"] / results[names[0]]["tokens_per_sec"]

    transformer = models["transformer"].eval()
    src = batches[0]["src"][:64]
    mask = batches[0]["src_mask"][:64]
    timings = interleaved({"cached": lambda: decode(transformer, src, mask, max_len=40),
                           "uncached": lambda: decode(transformer, src, mask, max_len=40, use_cache=False)},
                          rounds=4, device=args.device)
    decoding = {k: median(v) for k, v in timings.items()}

    info = machine(args.device)
    report = {"benchmark": "transformer vs bahdanau training throughput", "machine": info,
              "task": "dates-fr-en (char tokens)", "batch_size": args.batch_size,
              "target_tokens_per_batch": mean_tokens, "models": results,
              "transformer_over_bahdanau_tokens_per_sec": ratio,
              "greedy_decode_64_sentences_seconds": decoding,
              "kv_cache_speedup": decoding["uncached"] / decoding["cached"]}
    path = write_result("transformer", report, args.out)
    rows = [[name, r["parameters"], r["seconds_per_step"] * 1000, r["tokens_per_sec"]]
            for name, r in results.items()]
    print(table(["model", "parameters", "ms / step", "target tokens / s"], rows))
    print(f"Transformer / Bahdanau tokens/s: {ratio:.2f}x; KV cache decode speed-up: "
          f"{report['kv_cache_speedup']:.2f}x")
    print(f"machine: {describe(info)}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
