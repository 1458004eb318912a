"""The ELIZA bot: a conversation with a script, one reply at a time, and how each was made.

:class:`Eliza` keeps the conversation state (each pattern's reassembly cycle, the memory
queue, the random generator when seeded) over an immutable :class:`~attnlab.eliza.script.Script`.
A turn: split the input into clauses, pre-substitute, build the keystack of the first clause
with a keyword, try its keywords' patterns (following ``goto:`` links and ``newkey:``), store a
memory, and fall back to the memory queue, then to the last-resort rule.
:meth:`Eliza.explain` returns that turn as a :class:`Trace` of :class:`Step` s. The algorithm
and the script format are described in ``docs/eliza-script.md``.
"""

from __future__ import annotations

import random
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attnlab.eliza.loading import builtin_script, load_script
from attnlab.eliza.matcher import Token, match, split_clauses, substitute
from attnlab.eliza.script import CITE_RE, Decomposition, Keyword, Reassembly, Script

MEMORY_SIZE = 20  # the memory queue keeps the newest this many sentences
MAX_LINKS = 10  # goto chains longer than this give up on the keyword
DEFAULT_REPLY = "Go on, I am listening."  # said only if the script's last-resort rule says nothing


# --------------------------------------------------------------------------------------------
# The explain trace
# --------------------------------------------------------------------------------------------


@dataclass
class Step:
    """One keyword tried: which pattern matched, its parts, what was done with it."""

    keyword: str
    rank: int
    decomposition: str | None = None  # the pattern that matched (None: none matched)
    line: int | None = None  # its line in the script
    parts: list[str] = field(default_factory=list)
    reassembly: str | None = None  # the template or link chosen
    choice: int | None = None  # its 1-based position among the pattern's reassemblies
    of: int | None = None  # how many reassemblies the pattern has
    action: str = "no pattern matched"  # "say", "goto KEY", "newkey", "no pattern matched", "link limit"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Trace:
    """How one reply was made."""

    text: str
    clauses: list[str] = field(default_factory=list)  # every clause, after pre-substitution
    clause: int | None = None  # index of the clause used (the first with a keyword)
    keystack: list[tuple[str, str, int]] = field(default_factory=list)  # (word, keyword, rank), top first
    steps: list[Step] = field(default_factory=list)
    memory_stored: str | None = None
    memory_recalled: str | None = None
    memory_size: int = 0  # after this turn
    source: str = "none"  # "keyword", "memory" or "none"
    reply: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["keystack"] = [{"word": w, "keyword": k, "rank": r} for w, k, r in self.keystack]
        data["steps"] = [s.to_dict() for s in self.steps]
        return data


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


class Eliza:
    """Weizenbaum's ELIZA running a script; ``reply`` one line at a time.

    >>> bot = Eliza()
    >>> bot.reply("I remember my first bicycle")
    'How do you feel when you remember your first bicycle?'
    """

    name = "eliza"

    def __init__(self, script: Script | None = None, *, seed: int | None = None) -> None:
        self.script = script if script is not None else builtin_script()
        self.seed = seed
        self.reset()

    @classmethod
    def from_file(cls, path: str | Path, *, seed: int | None = None) -> Eliza:
        return cls(load_script(path), seed=seed)

    @property
    def greeting(self) -> str | None:
        return self.script.greetings[0] if self.script.greetings else None

    @property
    def exit_words(self) -> tuple[str, ...]:
        return self.script.quit_words

    def reset(self) -> None:
        """Forget the conversation: cycles start again, the memory empties, the seed restarts."""
        self._cycle: dict[int, int] = {}
        self._memory: deque[str] = deque(maxlen=MEMORY_SIZE)
        self._rng = random.Random(self.seed) if self.seed is not None else None

    def reply(self, text: str) -> str:
        """ELIZA's answer to one line. Never raises, whatever the text."""
        try:
            return self._turn(text if isinstance(text, str) else str(text or "")).reply
        except Exception:  # a bug must not end a conversation; explain() shows it instead
            return DEFAULT_REPLY

    def explain(self, text: str, *, advance: bool = False) -> Trace:
        """How ELIZA would answer ``text`` now. The conversation state is left as it was unless
        ``advance`` (then this is a turn like ``reply``)."""
        if advance:
            return self._turn(text)
        saved = (
            dict(self._cycle),
            deque(self._memory, maxlen=MEMORY_SIZE),
            self._rng.getstate() if self._rng else None,
        )
        try:
            return self._turn(text)
        finally:
            self._cycle, self._memory = saved[0], saved[1]
            if self._rng is not None:
                self._rng.setstate(saved[2])

    def farewell(self, text: str) -> str | None:
        """The reply to a line that ends the conversation, if a keyword (the goodbye rule) answers it."""
        trace = self._turn(text)
        return trace.reply if trace.source == "keyword" else None

    # --- one turn ---------------------------------------------------------------------------

    def _turn(self, text: str) -> Trace:
        script = self.script
        trace = Trace(text=text)
        clauses = [substitute(c, script.pre) for c in split_clauses(text)]
        trace.clauses = [" ".join(t[0] for t in c) for c in clauses]
        found: list[tuple[str, Keyword]] = []
        for index, clause in enumerate(clauses):
            found = self.keystack(clause)
            if found:
                trace.clause = index
                break
        tokens = clauses[trace.clause] if trace.clause is not None else (clauses[0] if clauses else [])
        trace.keystack = [(word, k.name, k.rank) for word, k in found]
        stack = [k for _, k in found]

        if stack and script.memory_keyword and stack[0] is script.keyword(script.memory_keyword):
            remembered = self._first_reply(script.memory_rules, tokens, trace=None)
            if remembered:
                self._memory.append(remembered)
                trace.memory_stored = remembered

        reply = None
        for keyword in stack:
            reply = self._try_keyword(keyword, tokens, trace, links=0)
            if reply:
                trace.source = "keyword"
                break
        if not reply and self._memory:
            reply = trace.memory_recalled = self._memory.popleft()
            trace.source = "memory"
        if not reply:
            step = Step("none", 0)
            trace.steps.append(step)
            reply = self._first_reply(script.none_rules, tokens, trace=step) or DEFAULT_REPLY
            trace.source = "none"
        trace.reply = reply
        trace.memory_size = len(self._memory)
        return trace

    def keystack(self, tokens: list[Token]) -> list[tuple[str, Keyword]]:
        """Weizenbaum's keystack of a clause, top first, as (word found, keyword) pairs.

        Scanning left to right, a keyword ranked above the current top goes on top; any other
        goes to the bottom. A keyword met a second time is not stacked again.
        """
        stack: list[tuple[str, Keyword]] = []
        stacked: set[int] = set()
        for word, _ in tokens:
            keyword = self.script.triggers.get(word)
            if keyword is None or id(keyword) in stacked:
                continue
            stacked.add(id(keyword))
            if stack and keyword.rank > stack[0][1].rank:
                stack.insert(0, (word, keyword))
            else:
                stack.append((word, keyword))
        return stack

    def _try_keyword(self, keyword: Keyword, tokens: list[Token], trace: Trace, links: int) -> str | None:
        """The reply this keyword's rules give, or None to move on to the next keyword."""
        step = Step(keyword.name, keyword.rank)
        trace.steps.append(step)
        found = self._decompose(keyword.rules, tokens, step)
        if found is None:
            return None
        rule, spans = found
        reassembly = self._choose(rule, step)
        if reassembly.kind == "newkey":
            step.action = "newkey"
            return None
        if reassembly.kind == "goto":
            step.action = f"goto {reassembly.text}"
            if links >= MAX_LINKS:
                step.action = "link limit"
                return None
            target = self.script.keyword(reassembly.text)
            return self._try_keyword(target, tokens, trace, links + 1)
        step.action = "say"
        return self._assemble(reassembly.text, tokens, spans)

    def _first_reply(self, rules: tuple[Decomposition, ...], tokens: list[Token], trace: Step | None) -> str:
        """Say-only rules (memory, none): the first matching pattern's next reassembly, assembled."""
        step = trace if trace is not None else Step("memory", 0)
        found = self._decompose(rules, tokens, step)
        if found is None:
            return ""
        rule, spans = found
        step.action = "say"
        return self._assemble(self._choose(rule, step).text, tokens, spans)

    def _decompose(self, rules, tokens, step: Step) -> tuple[Decomposition, list[tuple[int, int]]] | None:
        words = [t[0] for t in tokens]
        for rule in rules:
            spans = match(rule.elements, words)
            if spans is not None:
                step.decomposition, step.line = rule.pattern, rule.line
                step.parts = [" ".join(t[1] for t in tokens[a:b]) for a, b in spans]
                return rule, spans
        return None

    def _choose(self, rule: Decomposition, step: Step) -> Reassembly:
        count = len(rule.reassemblies)
        if self._rng is not None:
            index = self._rng.randrange(count)
        else:
            index = self._cycle.get(id(rule), 0)
            self._cycle[id(rule)] = (index + 1) % count
        chosen = rule.reassemblies[index]
        step.choice, step.of = index + 1, count
        step.reassembly = chosen.text if chosen.kind == "say" else f"{chosen.kind}: {chosen.text}".strip()
        return chosen

    def _assemble(self, template: str, tokens: list[Token], spans: list[tuple[int, int]]) -> str:
        def part(found: re.Match[str]) -> str:
            a, b = spans[int(found.group(1)) - 1]
            return " ".join(t[1] for t in substitute(tokens[a:b], self.script.reflections))

        text = CITE_RE.sub(part, template)
        text = re.sub(r"\s+", " ", text)
        text = re.sub(r"\s+([,.;:!?])", r"\1", text).strip()
        return text[:1].upper() + text[1:] if text else ""
