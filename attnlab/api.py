"""attnlab from Python and notebooks: ``attnlab.train(...)`` and ``attnlab.load_run(...)``.

>>> import attnlab
>>> run = attnlab.train("gpt", steps=200, out="runs/quick")          # the options of `attnlab train gpt`
>>> print(run.generate("Friends, Romans", max_new_tokens=100, seed=1))
>>> run.attention("Friends, Romans, countrymen")                       # inline viewer in Jupyter
>>> run.metrics[-1]

``train`` takes exactly the options of the command line (one definition: each kind's options
dataclass and :class:`~attnlab.training.session.RunOptions`), and runs through the same session, so
a run trained from Python is an ordinary run folder that every command reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from attnlab.errors import AttnlabError
from attnlab.runs import Run
from attnlab.runs import load_run as _load_run


def train(kind: str, *, callbacks: list | None = None, **options: Any) -> RunHandle:
    """Train (or, with ``resume=True``, resume) a run of ``kind`` and return it, loaded.

    ``options`` are the command line's flags with underscores: ``data``, ``tokenizer``, ``preset``,
    ``steps``, ``batch_size``, ``lr``, ``seed``, ``out``, ``overwrite``, ``set={"dropout": 0.2}`` ...
    ``callbacks`` are called by the trainer (see :class:`attnlab.training.trainer.Trainer`).
    """
    from attnlab.recipes import get_recipe
    from attnlab.training.session import RunOptions, start_run

    recipe = get_recipe(kind)
    recipe_names = {f.name for f in dataclasses.fields(recipe.options_class)}
    run_names = {f.name for f in dataclasses.fields(RunOptions)}
    unknown = sorted(set(options) - recipe_names - run_names)
    if unknown:
        raise AttnlabError(f"attnlab.train({kind!r}): unknown option(s) {', '.join(unknown)}; options: "
                           f"{', '.join(sorted(recipe_names | run_names))}")
    run_values = {k: v for k, v in options.items() if k in run_names}
    if isinstance(run_values.get("set"), dict):
        run_values["set"] = [f"{k}={v}" for k, v in run_values["set"].items()]
    _, trainer = start_run(recipe, {k: v for k, v in options.items() if k in recipe_names}, run_values,
                           callbacks=callbacks)
    return load_run(trainer.run_dir)


def load_run(path: str | Path, device: str = "cpu") -> RunHandle:
    """A run folder, loaded: its model, tokenizer(s), how it was trained, and methods to use it."""
    loaded = _load_run(path, device=device)
    return RunHandle(**{f.name: getattr(loaded, f.name) for f in dataclasses.fields(Run)})


@dataclasses.dataclass
class RunHandle(Run):
    """A loaded run with what a notebook user reaches for: generate, chat, attention, translate, fill."""

    def generate(self, prompt: str = "\n", max_new_tokens: int = 200, temperature: float = 0.8,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 stop: list[str] | None = None, stream: bool = False) -> str | Iterator[str]:
        """Continue ``prompt`` (returns the new text); with ``stream=True``, a generator of text pieces."""
        from attnlab.inference.sampling import SamplingConfig, generate_text

        self._require_language_model("generate")
        config = SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                                seed=seed)
        if not stream:
            return generate_text(self.model, self.tokenizer, prompt, config, stop=stop)
        return self._stream(prompt, config, stop)

    def _stream(self, prompt: str, config: Any, stop: list[str] | None) -> Iterator[str]:
        import queue
        import threading

        from attnlab.inference.sampling import generate_text

        pieces: queue.Queue = queue.Queue()
        done = object()

        def work() -> None:
            try:
                generate_text(self.model, self.tokenizer, prompt, config, stop=stop, on_text=pieces.put)
            except BaseException as err:  # handed to the reader, raised there
                pieces.put(err)
            pieces.put(done)

        threading.Thread(target=work, daemon=True).start()
        while (piece := pieces.get()) is not done:
            if isinstance(piece, BaseException):
                raise piece
            yield piece

    def chat(self, temperature: float = 0.8, top_k: int | None = None, seed: int | None = None) -> Any:
        """A conversation whose history stays in the model's context: ``answer = conversation.reply(text)``."""
        from attnlab.inference.chat import LanguageModelResponder
        from attnlab.inference.sampling import SamplingConfig

        self._require_language_model("chat")
        return LanguageModelResponder(self.model, self.tokenizer,
                                      SamplingConfig(max_new_tokens=300, temperature=temperature, top_k=top_k,
                                                     seed=seed))

    def attention(self, text: str, target: str | None = None) -> Any:
        """Where the model looks when it reads ``text``: tokens and every layer's and head's weights, with
        ``.plot()`` (a matplotlib figure) and an inline viewer in Jupyter."""
        from attnlab.viz.extract import extract_attention
        from attnlab.viz.notebook import AttentionView

        return AttentionView(extract_attention(self, text, target=target))

    def translate(self, texts: str | list[str], beam: int = 1) -> str | list[str]:
        """Translate one sentence or a list (translation runs)."""
        translator = self._translator()
        out = translator.translate([texts] if isinstance(texts, str) else list(texts), beam=beam)
        return out[0] if isinstance(texts, str) else out

    def evaluate(self, split: str = "test", beam: int = 1, limit: int | None = None) -> dict[str, float]:
        """Exact match, character error rate and BLEU on the run's own task split (translation runs)."""
        from attnlab.evaluation import translation_metrics
        from attnlab.recipes.translation import load_run_task

        translator = self._translator()
        pairs = load_run_task(self.run_json).split(split)[:limit]
        hyps = translator.translate([s for s, _ in pairs], beam=beam)
        return translation_metrics(hyps, [t for _, t in pairs])

    def _translator(self) -> Any:
        from attnlab.inference.translate import load_translator

        return load_translator(self)

    def fill(self, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
        """Guesses for each ``[MASK]`` of ``text`` (masked-LM runs), most likely first."""
        from attnlab.inference.fill import fill_masks

        return fill_masks(self.model, self.tokenizer, text, top_k=top_k)

    def _require_language_model(self, what: str) -> None:
        from attnlab.inference.text_runs import refuse_non_language_model

        refuse_non_language_model(self, f"run.{what}()")
