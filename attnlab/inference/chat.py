"""Chatting with a trained language model: the conversation so far is the prompt.

Each user line is appended to the running text followed by a blank line, the model continues it,
and its reply ends at the next blank line (or after ``max_new_tokens``). The conversation stays in
the context, cropped from the left once it is longer than the model can see.

A char model cannot read a character it never saw in training: the chat drops it (a typo never
ends the conversation) and says so, naming the characters, through :meth:`pop_notes`, which the
chat loop (:func:`attnlab.chat.run_chat`) shows after each reply.
"""

from __future__ import annotations

from pathlib import Path

from attnlab.inference.sampling import MAX_PROMPT_CHARS, MAX_SEED, SamplingConfig, check_prompt, generate_text


class LanguageModelResponder:
    def __init__(self, model, tokenizer, config: SamplingConfig, name: str = "model") -> None:
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.history = ""
        self.name = name
        self.greeting = f"(talking to {name}; it continues the conversation as text. 'quit' ends)"
        self.notes: list[str] = []

    def reset(self) -> None:
        self.history = ""
        self.notes = []

    def pop_notes(self) -> list[str]:
        """What the chat should tell the user about the last reply (then forgotten)."""
        notes, self.notes = self.notes, []
        return notes

    def reply(self, text: str) -> str:
        check_prompt(text, "your message")  # too long or not UTF-8: said, and the conversation goes on
        dropped = unseen_characters(self.tokenizer, text.strip())
        if dropped:
            shown = ", ".join(repr(c) for c in dropped[:10]) + (f" and {len(dropped) - 10} more" if len(dropped) > 10
                                                                else "")
            plural = "s" if len(dropped) != 1 else ""
            self.notes.append(f"dropped {len(dropped)} character{plural} that this model never saw in training: "
                              f"{shown}")
        self.history = (self.history + text.strip() + "\n")[-MAX_PROMPT_CHARS:]  # the model reads only the end
        answer = generate_text(self.model, self.tokenizer, self.history, self.config, stop=["\n\n"],
                               unknown="skip")
        answer = answer.strip("\n") or "..."
        self.history += answer + "\n\n"
        if self.config.seed is not None:  # the next reply draws anew (wrapping round within torch's seed range)
            self.config.seed = (self.config.seed + 1) % (MAX_SEED + 1)
        return answer


def unseen_characters(tokenizer, text: str) -> list[str]:
    """The distinct characters of ``text`` that ``tokenizer`` cannot encode (sorted); none for a
    byte-level BPE, which encodes anything."""
    return [c for c in sorted(set(text)) if not tokenizer.encode(c, unknown="skip")]


def load_responder(path: str | Path, *, temperature: float = 0.8, top_k: int | None = None,
                   top_p: float | None = None, max_new_tokens: int = 200, seed: int | None = None,
                   device: str = "cpu") -> LanguageModelResponder:
    from attnlab.inference.text_runs import load_text_run

    config = SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                            seed=seed)  # checked before the run is loaded
    run = load_text_run(path, "attnlab chat", device=device)
    return LanguageModelResponder(run.model, run.tokenizer, config, name=Path(path).name)
