"""``attnlab compare``: every era on the same data under the same wall-clock budget.

Two tasks, each model trained by its own ``attnlab train`` recipe in its own run folder:

- **Language modelling** on Julius Caesar, characters: Elman RNN, LSTM, GRU and GPT. Reported:
  loss over the whole held-out split (nats/char) and bits per character ``= loss / ln 2``
  (:mod:`attnlab.experiments.metrics`), parameters, training tokens/s, a sample.
- **Translation** of dates (``dates-fr-en`` by default): RNN / LSTM / GRU encoder-decoders without
  attention and with Bahdanau attention, and the Transformer. One training set mixes sources of
  k = 1, 2, 4 and 8 dates (equal numbers of pairs); exact match and character error rate are
  measured on held-out test pairs of each k: the Bahdanau paper's question, does quality survive
  longer inputs when the whole source must squeeze through one vector?
- **ELIZA** (1966), the rule-based baseline: no training, no loss; a few replies.

Outputs in ``out``: ``results.md`` (tables, samples, how it was made), ``results.json``,
``lm_validation.png``, ``translation_validation.png``, ``translation_length.png``.
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

LM_MODELS = {  # key: (recipe kind, label)
    "rnn": ("rnn", "RNN (Elman)"),
    "lstm": ("lstm", "LSTM"),
    "gru": ("gru", "GRU"),
    "gpt": ("gpt", "GPT"),
}
TRANSLATION_MODELS = {  # key: (recipe kind, cell override, label)
    "seq2seq-rnn": ("seq2seq-rnn", None, "RNN enc-dec"),
    "seq2seq-lstm": ("seq2seq-lstm", None, "LSTM enc-dec"),
    "seq2seq-gru": ("seq2seq-gru", None, "GRU enc-dec"),
    "bahdanau-rnn": ("bahdanau", "rnn", "RNN + Bahdanau attention"),
    "bahdanau-lstm": ("bahdanau", "lstm", "LSTM + Bahdanau attention"),
    "bahdanau-gru": ("bahdanau", "gru", "GRU + Bahdanau attention"),
    "transformer": ("transformer", None, "Transformer"),
}
ALL_MODELS = (*LM_MODELS, *TRANSLATION_MODELS)
ELIZA_PROMPTS = ("Men are all alike.", "They're always bugging us about something or other.",
                 "Well, my boyfriend made me come here.", "He says I'm depressed much of the time.")


def default_lm_presets() -> dict[str, str]:
    """The presets `attnlab train gpt` and `attnlab train lstm` use by default: compare trains what they train."""
    from attnlab.recipes import get_recipe

    return {"gpt": get_recipe("gpt").default_preset, "recurrent": get_recipe("lstm").default_preset}


@dataclass
class CompareConfig:
    """What ``attnlab compare`` runs; :meth:`quick` gives the toy sizes of the CI test."""

    out: Path = Path("results/compare")
    runs: Path | None = None  # run folders (default: out/runs)
    budget_min: float = 2.0  # wall-clock training budget per model (minutes)
    steps: int | None = None  # instead of a budget: the same number of steps for every model
    models: tuple[str, ...] = ALL_MODELS
    data: str = "julius-caesar"
    task: str = "dates-fr-en"
    ks: tuple[int, ...] = (1, 2, 4, 8)
    pairs_per_k: int = 4000
    tokenizer: str = "word"  # translation tokens: word or char
    lm_presets: dict[str, str] = field(default_factory=default_lm_presets)
    translation_presets: dict[str, str] = field(
        default_factory=lambda: {"seq2seq": "base", "transformer": "small"})
    lm_train: dict[str, Any] = field(default_factory=dict)  # extra TrainConfig settings for LMs
    translation_train: dict[str, Any] = field(default_factory=dict)
    eval_per_k: int = 200  # test pairs translated per k
    sample_tokens: int = 200
    lm_eval_chars: int | None = None  # score only the first N characters of the held-out split (None: all)
    threads: int | None = None  # torch CPU threads (None: torch's default)
    command: str = ""  # the command line that made the results (shown in results.md)
    seed: int = 1337
    quick: bool = False
    fresh: bool = False
    keep_weights: bool = True
    progress: bool = True

    @classmethod
    def quick_config(cls, **changes: Any) -> CompareConfig:
        """Toy sizes: every model for a dozen steps; the whole plan takes well under a minute or two."""
        values = dict(
            quick=True, threads=1, steps=12, pairs_per_k=40, eval_per_k=6, sample_tokens=40,
            lm_eval_chars=3000,
            lm_presets={"gpt": "gpt-nano", "recurrent": "tiny"},
            translation_presets={"seq2seq": "tiny", "transformer": "tiny"},
            lm_train=dict(batch_size=8, eval_every=12, eval_iters=2),
            translation_train=dict(batch_size=16, eval_every=12, eval_iters=2),
        )
        values.update(changes)
        return cls(**values)

    def __post_init__(self) -> None:
        unknown = [m for m in self.models if m not in ALL_MODELS]
        if unknown:
            raise AttnlabError(f"unknown model {unknown[0]!r} for compare; choose among "
                               f"{', '.join(ALL_MODELS)}")
        if not self.models:
            raise AttnlabError("no models to compare; name some with --models")
        if self.steps is None and not (self.budget_min > 0 and math.isfinite(self.budget_min)):
            raise AttnlabError(f"--budget must be a positive number of minutes, got {self.budget_min}")
        if self.steps is not None and self.steps < 1:
            raise AttnlabError(f"--steps must be a positive integer, got {self.steps}")
        if not self.ks or any(k < 1 for k in self.ks):
            raise AttnlabError("source lengths k must be positive integers")
        if self.tokenizer not in ("word", "char"):
            raise AttnlabError(f"translation tokenizer must be word or char, got {self.tokenizer!r}")
        if not self.task.startswith("dates-"):
            raise AttnlabError(f"compare translates dates: give --task dates-<src>-<tgt> (got {self.task!r})")
        if self.pairs_per_k < 10:
            raise AttnlabError("--pairs-per-k must be at least 10")
        self.out = Path(self.out)
        # absolute: the translation runs name their task file by path, and a rerun from elsewhere must match
        self.runs = (Path(self.runs) if self.runs is not None else self.out / "runs").absolute()

    @property
    def budget_s(self) -> float | None:
        return None if self.steps is not None else 60.0 * self.budget_min


# ------------------------------------------------------------------------------------------ the plan


def mixed_length_task(config: CompareConfig) -> Path:
    """A TSV of pairs with k = each of ``config.ks`` dates per sentence (written once, then reused).

    Every run reads it as its ``--task``; ``load_task`` splits it 80/10/10 with a fixed seed, so all
    models see the same train, validation and test pairs.
    """
    from attnlab.data.tasks import load_task

    ks = "-".join(str(k) for k in config.ks)
    path = config.runs / f"pairs-{config.task}-k{ks}-n{config.pairs_per_k}.tsv"
    lines = []
    for k in config.ks:
        data = load_task(config.task, n_pairs=config.pairs_per_k, k=k, seed=0)
        lines += [f"{s}\t{t}" for s, t in (*data.train, *data.val, *data.test)]
    text = "\n".join(lines) + "\n"
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        write_text_atomic(path, text)
    return path


def plan(config: CompareConfig, task_file: Path | None) -> list[RunSpec]:
    specs = []
    budget = config.budget_s
    steps = {"steps": config.steps} if config.steps is not None else {}
    for key, (kind, label) in LM_MODELS.items():
        if key not in config.models:
            continue
        preset = config.lm_presets["gpt" if kind == "gpt" else "recurrent"]
        specs.append(RunSpec(
            name=f"lm-{key}", kind=kind, label=label, seed=config.seed, budget_s=budget,
            options={"data": config.data, "tokenizer": "char", "preset": preset},
            train={**config.lm_train, **steps}))
    for key, (kind, cell, label) in TRANSLATION_MODELS.items():
        if key not in config.models:
            continue
        preset = config.translation_presets["transformer" if kind == "transformer" else "seq2seq"]
        specs.append(RunSpec(
            name=f"mt-{key}", kind=kind, label=label, seed=config.seed, budget_s=budget,
            options={"task": str(task_file), "tokenizer": config.tokenizer, "preset": preset},
            model={"cell": cell} if cell else {}, train={**config.translation_train, **steps}))
    return specs


# ------------------------------------------------------------------------------------------ evaluation


def evaluate_lm(config: CompareConfig, spec: RunSpec, outcome: RunOutcome) -> dict[str, Any]:
    import torch

    from attnlab.data.corpora import load_corpus, split_train_val
    from attnlab.experiments.metrics import heldout_lm_loss, lm_sample
    from attnlab.recipes.base import first_prompt
    from attnlab.runs import load_run

    run = load_run(outcome.run_dir)
    args = run.run_json.get("args", {})
    text = load_corpus(args.get("data", config.data))
    _, val_text = split_train_val(text, args.get("val_fraction", 0.1))
    val_text = val_text[: config.lm_eval_chars] if config.lm_eval_chars else val_text
    ids = torch.tensor(run.tokenizer.encode(val_text), dtype=torch.long)
    loss = heldout_lm_loss(run.model, ids)
    sample = lm_sample(run.model, run.tokenizer, first_prompt(text), config.sample_tokens, seed=config.seed)
    return {"task": "lm", "heldout_loss": loss, "bits_per_char": loss / math.log(2),
            "val_chars": len(val_text), "sample": sample}


def evaluate_translation(config: CompareConfig, spec: RunSpec, outcome: RunOutcome) -> dict[str, Any]:
    from attnlab.data.tasks import load_task
    from attnlab.experiments.metrics import by_length, translation_by_length
    from attnlab.inference.translate import Translator
    from attnlab.runs import load_run

    run = load_run(outcome.run_dir)
    translator = Translator(run.model, run.tokenizers["src_tokenizer"], run.tokenizers["tgt_tokenizer"])
    data = load_task(spec.options["task"], seed=0)
    scores, outputs = translation_by_length(translator, data.test, config.ks, config.eval_per_k)
    examples = [{"k": k, "source": group[0][0], "reference": group[0][1], "output": outputs[str(k)][0]}
                for k, group in by_length(data.test, config.ks, 1).items() if group]
    return {"task": "translation", "by_k": scores, "examples": examples, "test_pairs": len(data.test)}


def eliza_result() -> dict[str, Any]:
    from attnlab.eliza import Eliza

    eliza = Eliza()
    return {"name": "eliza", "label": "ELIZA (1966, rules)", "kind": "eliza",
            "keywords": len(eliza.script.keywords),
            "exchanges": [{"user": line, "eliza": eliza.reply(line)} for line in ELIZA_PROMPTS]}


# ------------------------------------------------------------------------------------------ running


def run_compare(config: CompareConfig) -> dict[str, Any]:
    """Train what is not trained yet, evaluate it, and write the results folder; returns results.json."""
    from attnlab.experiments.plan import run_plan

    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    wants_translation = any(m in TRANSLATION_MODELS for m in config.models)
    task_file = mixed_length_task(config) if wants_translation else None
    specs = plan(config, task_file)

    def evaluate(spec: RunSpec, outcome: RunOutcome) -> dict[str, Any]:
        if spec.name.startswith("lm-"):
            return evaluate_lm(config, spec, outcome)
        return evaluate_translation(config, spec, outcome)

    def estimate(spec: RunSpec) -> float | None:
        return None if spec.budget_s is None else spec.budget_s * 1.15 + 15  # + calibration, evaluation

    results = run_plan(specs, config.runs, evaluate, title="compare", progress=config.progress,
                       fresh=config.fresh, keep_weights=config.keep_weights, estimate=estimate)
    summary = {
        "command": "attnlab compare", "config": jsonable(asdict(config)),
        "lm": [r for r in results if r.get("task") == "lm"],
        "translation": [r for r in results if r.get("task") == "translation"],
        "eliza": eliza_result(),
    }
    write_outputs(config, summary)
    return summary


def write_outputs(config: CompareConfig, summary: dict[str, Any]) -> None:
    from attnlab.experiments.figures import plot_length_curves, plot_validation_vs_time

    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "results.json", summary)
    if summary["lm"]:
        plot_validation_vs_time([(r["label"], r["history"]["val"]) for r in summary["lm"]],
                                out / "lm_validation.png",
                                title=f"{config.data}, characters: held-out loss under the same budget")
    if summary["translation"]:
        plot_validation_vs_time([(r["label"], r["history"]["val"]) for r in summary["translation"]],
                                out / "translation_validation.png",
                                title=f"{config.task}: held-out loss (teacher forcing)")
        plot_length_curves([(r["label"], r["by_k"]) for r in summary["translation"]], config.ks,
                           out / "translation_length.png",
                           title=f"{config.task}: greedy decoding of held-out test pairs vs source length")
    write_text_atomic(out / "results.md", markdown(config, summary))


def markdown(config: CompareConfig, summary: dict[str, Any]) -> str:
    from attnlab.experiments.report import count, machine, markdown_table, number, percent, short

    how = (f"{config.steps} optimizer steps per model" if config.steps is not None
           else f"a wall-clock budget of {config.budget_min:g} min of optimizer steps per model")
    parts = [
        "# attnlab compare\n",
        f"Every model trained by its own `attnlab train` recipe, {how}"
        f"{' (quick mode: toy sizes)' if config.quick else ''}; seed {config.seed}.\n",
        f"Machine: {machine()}. The machine was shared with other jobs while this ran, so times, "
        "tokens/s and budget-limited step counts are noisy.\n",
        *([f"Command: `{config.command}`\n"] if config.command else []),
        "## Language modelling: " + f"{config.data}, characters\n",
        "Loss: mean cross-entropy over every character of the held-out split (the last 10% of the text, "
        "never trained on); bits/char = loss / ln 2. Tokens/s: training throughput.\n",
    ]
    eliza = summary["eliza"]
    rows = [[eliza["label"], f"0 learned ({eliza['keywords']} keywords)", "—", "—", "—", "—", "—",
             short(f"> {eliza['exchanges'][0]['user']} — {eliza['exchanges'][0]['eliza']}", 70)]]
    for r in summary["lm"]:
        t = r["training"]
        rows.append([r["label"], count(t["parameters"]), t["step"], number(t["elapsed"], 1),
                     f"{t['tokens_per_sec']:,.0f}", number(r["heldout_loss"]), number(r["bits_per_char"]),
                     short(r["sample"], 70)])
    parts.append(markdown_table(["model", "parameters", "steps", "train s", "tokens/s", "val loss",
                                 "bits/char", "sample"], rows))
    if summary["lm"]:
        parts.append("\n![validation loss vs time](lm_validation.png)\n")
        parts.append("\n### Samples (temperature 0.8)\n")
        for r in summary["lm"]:
            parts.append(f"**{r['label']}**\n\n```\n{r['sample'].strip()}\n```\n")
    parts.append("\n### ELIZA (rule-based baseline: no training)\n")
    parts.append("\n".join(f"> {x['user']}\n>\n> **ELIZA:** {x['eliza']}\n" for x in eliza["exchanges"]))
    if summary["translation"]:
        ks = [str(k) for k in config.ks]
        parts.append(f"\n## Translation: {config.task}, {config.tokenizer} tokens\n")
        first = summary["translation"][0]
        parts.append(
            f"One training set mixes sources of k = {', '.join(ks)} dates ({config.pairs_per_k} pairs each, "
            f"split 80/10/10; {first['test_pairs']} test pairs). Greedy decoding; exact match (EM) and "
            f"character error rate (CER) on up to {config.eval_per_k} held-out test pairs per k.\n")
        rows = []
        for r in summary["translation"]:
            t = r["training"]
            by_k = r["by_k"]
            rows.append([r["label"], count(t["parameters"]), t["step"], f"{t['tokens_per_sec']:,.0f}",
                         number(t["val_loss"]),
                         *[percent(by_k[k]["exact_match"]) if k in by_k else "—" for k in ks],
                         *[percent(by_k[k]["cer"]) if k in by_k else "—" for k in ks[-1:]]])
        parts.append(markdown_table(["model", "parameters", "steps", "tokens/s", "val loss",
                                     *[f"EM k={k}" for k in ks], f"CER k={ks[-1]}"], rows))
        parts.append("\n![exact match vs source length](translation_length.png)\n")
        parts.append("\n![validation loss vs time](translation_validation.png)\n")
        parts.append("\n### Examples (first test pair of each length)\n")
        for r in summary["translation"]:
            lines = [f"- k={e['k']}: `{e['source']}` → `{short(e['output'], 120)}`"
                     + ("" if e["output"] == e["reference"] else f" (reference `{e['reference']}`)")
                     for e in r["examples"][:2]]
            parts.append(f"**{r['label']}**\n\n" + "\n".join(lines) + "\n")
    return "\n".join(parts)
