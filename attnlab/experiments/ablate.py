"""``attnlab ablate``: the attention overview's GPT ablation study, redone with a held-out validation split.

One base GPT (the ``gpt-jc`` preset: 4 layers, 4 heads, width 128, characters of Julius Caesar),
then one family of variants per question, every run with the same steps, batches and seed:

- layers: 1, 3, 5, 7             (depth)
- heads: 1, 2, 4, 8              (same width, split into more, smaller heads)
- learning rate: 1e-2, 1e-3, 1e-4
- block: full, without layer norm (``norm="none"``), without residual connections
  (``residual=False``), without the feed-forward (``ffn=False``)

Variants that coincide (the base is 4 heads at 1e-3 with every part) are trained once. The
validation loss is measured on the last 10% of the text, never trained on: the attention overview measured it
on the training data, so its "validation" numbers rewarded memorisation.

Outputs in ``out``: ``results.md`` (table of final validation losses), ``results.json`` and one
overlay plot per family (``ablate_layers.png``, ``ablate_heads.png``, ``ablate_lr.png``,
``ablate_block.png``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from attnlab.errors import AttnlabError
from attnlab.experiments.report import jsonable
from attnlab.experiments.runner import RunOutcome, RunSpec
from attnlab.io import write_json_atomic, write_text_atomic

FAMILIES = ("layers", "heads", "lr", "block")
BLOCK_VARIANTS = {  # label: model overrides
    "full block": {},
    "no layer norm": {"norm": "none"},
    "no residual": {"residual": False},
    "no feed-forward": {"ffn": False},
}


@dataclass
class AblateConfig:
    """What ``attnlab ablate`` runs; :meth:`quick_config` gives the toy sizes of the CI test."""

    out: Path = Path("results/ablate")
    runs: Path | None = None  # run folders (default: out/runs)
    steps: int = 500
    data: str = "julius-caesar"
    preset: str = "gpt-jc"
    base: dict[str, Any] = field(default_factory=lambda: {"n_layer": 4, "n_head": 4})
    base_lr: float = 1e-3
    layers: tuple[int, ...] = (1, 3, 5, 7)
    heads: tuple[int, ...] = (1, 2, 4, 8)
    lrs: tuple[float, ...] = (1e-2, 1e-3, 1e-4)
    families: tuple[str, ...] = FAMILIES
    train: dict[str, Any] = field(default_factory=lambda: {"batch_size": 16, "eval_iters": 20})
    lm_eval_chars: int | None = None
    seed: int = 1337
    quick: bool = False
    fresh: bool = False
    keep_weights: bool = True
    progress: bool = True
    threads: int | None = None
    command: str = ""  # the command line that made the results (shown in results.md)

    @classmethod
    def quick_config(cls, **changes: Any) -> AblateConfig:
        """A tiny GPT (width 32, context 32) for 8 steps per variant: the whole study in seconds."""
        values = dict(quick=True, threads=1, steps=8, preset="gpt-nano",
                      base={"n_layer": 2, "n_head": 4, "n_embd": 32, "context_length": 32},
                      train={"batch_size": 4, "eval_iters": 2}, lm_eval_chars=2000)
        values.update(changes)
        return cls(**values)

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise AttnlabError(f"--steps must be a positive integer, got {self.steps!r}")
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown or not self.families:
            raise AttnlabError(f"unknown ablation family {unknown[0] if unknown else ''!r}; choose among "
                               f"{', '.join(FAMILIES)}")
        import dataclasses

        from attnlab.models.gpt import GPTConfig

        fields = {f.name for f in dataclasses.fields(GPTConfig)} - {"vocab_size"}
        for key in self.base:
            if key not in fields:
                raise AttnlabError(f"--set {key}: not a GPT model setting; choose among "
                                   f"{', '.join(sorted(fields))}")
        from attnlab.checkpoint import config_from_preset
        from attnlab.models.gpt import PRESETS
        from attnlab.training.session import split_sets

        model_part, _ = split_sets(dict(self.base), GPTConfig)  # every value checked now, not after some runs
        config_from_preset(GPTConfig, PRESETS, self.preset, "GPT", model_part, vocab_size=256)
        self.out = Path(self.out)
        self.runs = (Path(self.runs) if self.runs is not None else self.out / "runs").absolute()


def variant_name(model: dict[str, Any], lr: float) -> str:
    """A folder name that says what differs: ``L4-H4-lr0.001``, ``L4-H4-lr0.001-noffn``."""
    name = f"L{model['n_layer']}-H{model['n_head']}-lr{lr:g}"
    if model.get("norm") == "none":
        name += "-nonorm"
    if model.get("residual") is False:
        name += "-noresidual"
    if model.get("ffn") is False:
        name += "-noffn"
    return name


def plan(config: AblateConfig) -> tuple[list[RunSpec], dict[str, list[tuple[str, str]]]]:
    """The unique runs, and for each family its ``(label, run name)`` members in order."""
    base = dict(config.base)
    wanted: dict[str, list[tuple[str, dict[str, Any], float]]] = {
        "layers": [(f"{n} layers", {**base, "n_layer": n}, config.base_lr) for n in config.layers],
        "heads": [(f"{h} heads", {**base, "n_head": h}, config.base_lr) for h in config.heads],
        "lr": [(f"lr {lr:g}", dict(base), lr) for lr in config.lrs],
        "block": [(label, {**base, **changes}, config.base_lr) for label, changes in BLOCK_VARIANTS.items()],
    }
    warmup = min(100, max(1, config.steps // 10))
    every = max(1, config.steps // 10)
    specs: dict[str, RunSpec] = {}
    families: dict[str, list[tuple[str, str]]] = {}
    for family in config.families:
        members = []
        for label, model, lr in wanted[family]:
            name = variant_name(model, lr)
            if name not in specs:
                specs[name] = RunSpec(
                    name=name, kind="gpt", label=name, seed=config.seed,
                    options={"data": config.data, "tokenizer": "char", "preset": config.preset},
                    model=model,
                    train={**config.train, "steps": config.steps, "lr": lr, "warmup_steps": warmup,
                           "eval_every": every, "ckpt_every": every})
            members.append((label, name))
        families[family] = members
    return list(specs.values()), families


def evaluate(config: AblateConfig, spec: RunSpec, outcome: RunOutcome) -> dict[str, Any]:
    import torch

    from attnlab.data.corpora import load_corpus, split_train_val
    from attnlab.experiments.metrics import heldout_lm_loss
    from attnlab.runs import load_run

    run = load_run(outcome.run_dir)
    _, val_text = split_train_val(load_corpus(config.data), 0.1)
    val_text = val_text[: config.lm_eval_chars] if config.lm_eval_chars else val_text
    ids = torch.tensor(run.tokenizer.encode(val_text), dtype=torch.long)
    loss = heldout_lm_loss(run.model, ids)
    return {"heldout_loss": loss, "bits_per_char": loss / math.log(2)}


def run_ablate(config: AblateConfig) -> dict[str, Any]:
    """Train what is not trained yet, evaluate, write the results folder; returns results.json."""
    from attnlab.experiments.plan import run_plan

    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    specs, families = plan(config)
    results = run_plan(specs, config.runs, lambda spec, outcome: evaluate(config, spec, outcome),
                       title="ablate", progress=config.progress, fresh=config.fresh,
                       keep_weights=config.keep_weights)
    by_name = {r["name"]: r for r in results}
    summary = {"command": "attnlab ablate", "config": jsonable(asdict(config)), "runs": results,
               "families": {family: [{"label": label, "run": name} for label, name in members]
                            for family, members in families.items()}}
    write_outputs(config, summary, by_name)
    return summary


FAMILY_TITLES = {"layers": "number of layers", "heads": "number of heads (same width)",
                 "lr": "peak learning rate", "block": "parts of the block removed"}


def write_outputs(config: AblateConfig, summary: dict[str, Any], by_name: dict[str, dict[str, Any]]) -> None:
    from attnlab.experiments.plan import history_rows
    from attnlab.training.plots import plot_runs

    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "results.json", summary)
    for family, members in summary["families"].items():
        runs = [(m["label"], history_rows(by_name[m["run"]])) for m in members]
        plot_runs(runs, out / f"ablate_{family}.png",
                  title=f"GPT ablation, {FAMILY_TITLES[family]}: {config.steps} steps, held-out validation")
    write_text_atomic(out / "results.md", markdown(config, summary, by_name))


def markdown(config: AblateConfig, summary: dict[str, Any], by_name: dict[str, dict[str, Any]]) -> str:
    from attnlab.experiments.report import count, machine, markdown_table, number

    base = ", ".join(f"{k}={v}" for k, v in config.base.items())
    parts = [
        "# attnlab ablate\n",
        f"GPT on {config.data} (characters), preset `{config.preset}` with {base}, "
        f"peak lr {config.base_lr:g}; every variant {config.steps} steps of {config.train.get('batch_size')} "
        f"sequences, seed {config.seed}, "
        "warm-up then cosine decay"
        f"{' (quick mode: toy sizes)' if config.quick else ''}.\n",
        "Validation = the last 10% of the text, never trained on. *val loss* is the trainer's last "
        "evaluation (the same fixed batches for every variant); *held-out loss* scores every character of "
        "the split once (each predicted from at least half a context).\n",
        f"Machine: {machine()}. The machine was shared with other jobs while this ran, so times, "
        "tokens/s and budget-limited step counts are noisy.\n",
        *([f"Command: `{config.command}`\n"] if config.command else []),
    ]
    rows = []
    for family, members in summary["families"].items():
        for m in members:
            r = by_name[m["run"]]
            t = r["training"]
            rows.append([family, m["label"], count(t["parameters"]), number(t["train_loss"]),
                         number(t["val_loss"]), number(r["heldout_loss"]), number(r["bits_per_char"]),
                         number(t["elapsed"], 0)])
    parts.append(markdown_table(["family", "variant", "parameters", "train loss", "val loss", "held-out loss",
                                 "bits/char", "train s"], rows))
    for family in summary["families"]:
        parts.append(f"\n![{family}](ablate_{family}.png)\n")
    return "\n".join(parts)
