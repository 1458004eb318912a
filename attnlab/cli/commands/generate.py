"""``attnlab generate RUN``: continue a prompt with a trained language model."""

from __future__ import annotations

import argparse

from attnlab.cli.help import DefaultsHelpFormatter


def add_sampling_arguments(p: argparse.ArgumentParser, max_new_tokens: int = 500) -> None:
    p.add_argument("--max-new-tokens", type=int, default=max_new_tokens, help="tokens to generate")
    p.add_argument("--temperature", type=float, default=0.8, help="softmax temperature; 0 = greedy")
    p.add_argument("--top-k", type=int, default=None, help="sample only among the k most likely tokens")
    p.add_argument("--top-p", type=float, default=None, help="nucleus sampling: smallest set with this mass")
    p.add_argument("--seed", type=int, default=None, help="seed for reproducible samples")
    p.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "generate", help="generate text from a trained language model run",
        description="Continue a prompt with a trained GPT (or RNN/LSTM/GRU) run. Prompts longer than the "
                    "model's context are cropped from the left with a warning.",
        formatter_class=DefaultsHelpFormatter)
    p.add_argument("run", help="run folder, e.g. runs/gpt-julius-caesar")
    p.add_argument("--prompt", default="\n", help="text to continue (default: a newline: start a new passage)")
    add_sampling_arguments(p)
    p.add_argument("--stop", action="append", default=[],
                   help="stop when this string appears (repeatable; \\n and \\t are read as newline and tab)")
    p.add_argument("--num-samples", type=int, default=1, help="how many samples to draw")
    p.add_argument("--no-cache", action="store_true", help="recompute the whole context for each token")
    p.set_defaults(func=run)


def sampling_config(args: argparse.Namespace, sample: int = 0):
    """The :class:`SamplingConfig` of sample number ``sample`` (its seed is ``--seed + sample``); checks the flags."""
    from attnlab.inference.sampling import SamplingConfig

    return SamplingConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                          top_p=args.top_p, seed=None if args.seed is None else args.seed + sample,
                          use_cache=not args.no_cache)


def run(args: argparse.Namespace) -> int:
    import sys
    import warnings

    from attnlab.data.play_words import share_note
    from attnlab.errors import AttnlabError
    from attnlab.inference.sampling import MAX_SEED, check_prompt, check_seed, generate_text
    from attnlab.inference.text_runs import load_text_run

    # every flag is checked before the model is loaded
    if args.num_samples < 1:
        raise AttnlabError("--num-samples must be >= 1")
    check_seed(args.seed)
    if args.seed is not None and args.seed + args.num_samples - 1 > MAX_SEED:
        raise AttnlabError(f"--seed {args.seed} with {args.num_samples} samples goes past 2**63 - 1 (each "
                           "sample takes the next seed); use a smaller seed")
    sampling_config(args)
    check_prompt(args.prompt)
    for stop in args.stop:
        check_prompt(stop, "--stop")
    loaded = load_text_run(args.run, "attnlab generate", device=args.device)
    loaded.tokenizer.encode(args.prompt)  # unknown characters: a clear error before anything is printed
    stops = [s.replace("\\n", "\n").replace("\\t", "\t") for s in args.stop]
    for i in range(args.num_samples):
        if args.num_samples > 1:
            print(f"--- sample {i + 1} ---")
        sys.stdout.write(args.prompt)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            text = generate_text(loaded.model, loaded.tokenizer, args.prompt, sampling_config(args, i), stop=stops,
                                 on_text=lambda piece: (sys.stdout.write(piece), sys.stdout.flush()))
        for w in caught:
            print(f"attnlab: warning: {w.message}", file=sys.stderr)
        sys.stdout.write("\n")
        sys.stdout.flush()
        print(f"attnlab: note: {share_note(text)}", file=sys.stderr)
    return 0
