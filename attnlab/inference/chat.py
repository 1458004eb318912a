"""Chatting with a trained language model: the conversation so far is the prompt.

Each user line is appended to the running text followed by a blank line, the model continues it,
and its reply ends at the next blank line (or after ``max_new_tokens``). The conversation stays in
the context, cropped from the left once it is longer than the model can see.
"""

from __future__ import annotations

from pathlib import Path

from attnlab.inference.sampling import SamplingConfig, generate_text


class LanguageModelResponder:
    def __init__(self, model, tokenizer, config: SamplingConfig, name: str = "model") -> None:
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.history = ""
        self.name = name
        self.greeting = f"(talking to {name}; it continues the conversation as text. 'quit' ends)"

    def reset(self) -> None:
        self.history = ""

    def reply(self, text: str) -> str:
        self.history += text.strip() + "\n"
        answer = generate_text(self.model, self.tokenizer, self.history, self.config, stop=["\n\n"],
                               unknown="skip")
        answer = answer.strip("\n") or "..."
        self.history += answer + "\n\n"
        if self.config.seed is not None:
            self.config.seed += 1
        return answer


def load_responder(path: str | Path, *, temperature: float = 0.8, top_k: int | None = None,
                   max_new_tokens: int = 200, seed: int | None = None, device: str = "cpu") -> LanguageModelResponder:
    from attnlab.runs import load_run

    run = load_run(path, device=device)
    config = SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, seed=seed)
    return LanguageModelResponder(run.model, run.tokenizer, config, name=Path(path).name)
