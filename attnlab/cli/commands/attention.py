"""``attnlab attention RUN --text TEXT --out FILE.png|FILE.html``: see where a trained model looks."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "attention", help="draw a trained model's attention as heat maps (PNG) or an interactive page (HTML)",
        description="Run a trained model on --text and draw its attention weights. A .png/.svg/.pdf gets a "
                    "grid of heat maps, one per layer and head, with token labels and a colour bar. A .html "
                    "gets one self-contained page (works offline, opened from disk) with a head view "
                    "(lines between tokens) and a model view (every layer x head; click to enlarge). "
                    "GPT, encoder, Transformer (encoder / decoder / cross) and Bahdanau runs are supported.",
        epilog="examples:\n"
               "  attnlab attention runs/gpt-julius-caesar --text 'Friends, Romans' --out attention.png\n"
               "  attnlab attention runs/gpt-julius-caesar --text 'Friends, Romans' --out viewer.html\n"
               "  attnlab attention runs/gpt-julius-caesar --text 'Brutus' --layer 2 --head 1 --out one.png",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="run folder, e.g. runs/gpt-julius-caesar")
    p.add_argument("--text", required=True,
                   help="the text to read (the source sentence for translation models); texts longer than "
                        "the model's context are cropped to its first tokens, with a note")
    p.add_argument("--out", required=True,
                   help="output file: .png (or .svg/.pdf) for heat maps, .html for the interactive viewer")
    p.add_argument("--layer", type=int, default=None, help="only this layer (counted from 0); default: all")
    p.add_argument("--head", type=int, default=None, help="only this head (counted from 0); default: all")
    p.add_argument("--part", default=None,
                   help="encoder-decoder runs: only 'encoder', 'decoder' or 'cross' attention; default: all")
    p.add_argument("--target", default=None,
                   help="Transformer runs: the output the decoder reads (teacher forcing); default: the "
                        "model's own greedy translation")
    p.add_argument("--device", default="cpu", help="cpu, cuda or mps")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from attnlab.inference.sampling import check_prompt
    from attnlab.outputs import check_output_file

    out = check_output_file(args.out, "--out", (".png", ".svg", ".pdf", ".html", ".htm"),
                            "end the name with .png (heat maps) or .html (viewer); .svg and .pdf work too")
    suffix = out.suffix.lower()
    check_prompt(args.text, "--text")
    from attnlab.runs import load_run
    from attnlab.viz.extract import extract_attention

    loaded = load_run(args.run, device=args.device)
    attention = extract_attention(loaded, args.text, target=args.target)
    for note in attention.notes:
        print(f"attnlab: note: {note}", file=sys.stderr)
    attention = attention.select(layer=args.layer, head=args.head, part=args.part)
    panels = sum(m.n_layers * m.n_heads for m in attention.maps)
    if suffix in (".html", ".htm"):
        from attnlab.viz.html import save_attention_html

        save_attention_html(attention, out, title=f"attnlab attention: {Path(args.run).name}")
        print(f"wrote {out} ({panels} attention maps; open it in a browser, no server needed)")
    else:
        from attnlab.viz.heatmaps import save_attention_image

        save_attention_image(attention, out)
        print(f"wrote {out} ({panels} heat map{'s' if panels != 1 else ''})")
    return 0
