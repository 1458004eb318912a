"""The ELIZA script language: what a script holds, how it is checked, and its plain text form.

A script is a list of ``directive: value`` lines (``greeting:``, ``pre:``, ``reflect:``,
``class:``, ``key:`` with its ``match:``/``say:``/``goto:``/``newkey:`` rules, ``memory:``,
``none:``); the structured form (YAML/JSON, :mod:`attnlab.eliza.structured`) has the same
content, and :mod:`attnlab.eliza.loading` reads either from a file. The full manual, with
examples, is ``docs/eliza-script.md``.

Every form becomes a stream of (line, directive, value) triples for one :class:`Builder`,
which checks each as it comes and builds an immutable :class:`Script`. Every mistake is an
:class:`AttnlabError` naming the file, the line and the problem.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from attnlab.errors import AttnlabError

WORD = r"[^\W_]+(?:'[^\W_]+)*"  # a word: letters and digits, inner apostrophes
WORD_RE = re.compile(rf"{WORD}\Z")
CITE_RE = re.compile(r"\{(\d*)\}")  # {n} in a template cites part n
_PATTERN_TOKEN_RE = re.compile(r"\[[^\]]*\]?|\S+")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})


def normalise(text: str) -> str:
    """NFC, with typographic apostrophes made plain: scripts and inputs are compared in this form."""
    return unicodedata.normalize("NFC", text).translate(_APOSTROPHES)


# --------------------------------------------------------------------------------------------
# The script, once loaded (immutable; the conversation state lives in Eliza)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Element:
    """One element of a decomposition pattern: a span of words or a single word from a set."""

    text: str  # as written in the script: "*", "#2", "[want need]", "@family", "mother"
    min_words: int
    max_words: int | None  # None: unbounded
    words: frozenset[str] | None = None  # single-word elements: the words allowed


@dataclass(frozen=True)
class Reassembly:
    kind: str  # "say" (a template), "goto" (a link to a keyword) or "newkey"
    text: str  # the template, or the keyword linked to
    line: int


@dataclass(frozen=True, eq=False)
class Decomposition:
    pattern: str
    elements: tuple[Element, ...]
    reassemblies: tuple[Reassembly, ...]
    line: int


@dataclass(frozen=True, eq=False)
class Keyword:
    name: str
    words: tuple[str, ...]
    rank: int
    rules: tuple[Decomposition, ...]
    line: int


@dataclass(frozen=True, eq=False)
class Script:
    """A loaded, validated ELIZA script."""

    source: str
    greetings: tuple[str, ...]
    quit_words: tuple[str, ...]
    pre: dict[tuple[str, ...], tuple[str, ...]]
    reflections: dict[tuple[str, ...], tuple[str, ...]]
    classes: dict[str, frozenset[str]]
    keywords: tuple[Keyword, ...]
    triggers: dict[str, Keyword]  # every word that triggers a keyword -> that keyword
    memory_keyword: str | None
    memory_rules: tuple[Decomposition, ...]
    none_rules: tuple[Decomposition, ...]

    def keyword(self, name: str) -> Keyword | None:
        """The keyword a ``goto:`` names: any of its words, or the ``@class`` (with or without
        the ``@``) of its line."""
        name = name.lower()
        found = self.triggers.get(name)
        if found is None:
            found = next((k for k in self.keywords if k.name in (name, f"@{name}")), None)
        return found


# --------------------------------------------------------------------------------------------
# Checking and building: every form becomes (line, directive, value) triples for one Builder
# --------------------------------------------------------------------------------------------

_DIRECTIVES = (
    "greeting",
    "quit",
    "pre",
    "reflect",
    "class",
    "key",
    "match",
    "say",
    "goto",
    "newkey",
    "memory",
    "none",
)


class Builder:
    """Collects directives in order, checks each as it comes, and builds a Script at the end."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.greetings: list[str] = []
        self.quit_words: list[str] = []
        self.pre: dict[tuple[str, ...], tuple[str, ...]] = {}
        self.reflections: dict[tuple[str, ...], tuple[str, ...]] = {}
        self.classes: dict[str, tuple[frozenset[str], int]] = {}
        self.blocks: list[dict[str, Any]] = []  # keys, the memory rule and the none rule, in order
        self.block: dict[str, Any] | None = None
        self.rule: dict[str, Any] | None = None

    def fail(self, line: int, message: str) -> AttnlabError:
        where = f"{self.source}, line {line}" if line else self.source
        return AttnlabError(f"ELIZA script {where}: {message}")

    # --- directives -------------------------------------------------------------------------

    def add(self, line: int, name: str, value: str) -> None:
        name = name.strip().lower()
        value = normalise(value.strip())
        handler = getattr(self, f"_d_{name}", None)
        if name not in _DIRECTIVES or handler is None:
            raise self.fail(line, f"unknown directive {name!r}; expected one of: {', '.join(_DIRECTIVES)}")
        handler(line, value)

    def _d_greeting(self, line: int, value: str) -> None:
        if not value:
            raise self.fail(line, "'greeting:' needs the text ELIZA says first")
        self.greetings.append(value)

    def _d_quit(self, line: int, value: str) -> None:
        words = self._words(line, value, "quit")
        if not words:
            raise self.fail(line, "'quit:' needs at least one word")
        self.quit_words.extend(words)

    def _pair(self, line: int, value: str, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        if "=" not in value:
            raise self.fail(line, f"'{name}:' needs the form 'WORDS = WORDS', got {value!r}")
        left, right = (part.split() for part in value.split("=", 1))
        if not left or not right:
            raise self.fail(line, f"'{name}:' needs words on both sides of '=', got {value!r}")
        for word in left + right:
            if not WORD_RE.match(word):
                raise self.fail(line, f"'{name}:' word {word!r} is not a word (letters, digits, apostrophes)")
        return tuple(w.lower() for w in left), tuple(right)

    def _d_pre(self, line: int, value: str) -> None:
        left, right = self._pair(line, value, "pre")
        self.pre[left] = tuple(w.lower() for w in right)

    def _d_reflect(self, line: int, value: str) -> None:
        left, right = self._pair(line, value, "reflect")
        self.reflections[left] = right

    def _d_class(self, line: int, value: str) -> None:
        if "=" not in value:
            raise self.fail(line, f"'class:' needs the form 'NAME = WORD WORD ...', got {value!r}")
        name, members = value.split("=", 1)
        name = name.strip().lower()
        if not WORD_RE.match(name):
            raise self.fail(line, f"class name {name!r} must be a single word")
        if name in self.classes:
            raise self.fail(line, f"class {name!r} is already defined on line {self.classes[name][1]}")
        words = self._words(line, members, "class")
        if not words:
            raise self.fail(line, f"class {name!r} has no words")
        self.classes[name] = (frozenset(words), line)

    def _words(self, line: int, value: str, name: str) -> list[str]:
        words = value.split()
        for word in words:
            if not WORD_RE.match(word):
                raise self.fail(
                    line, f"'{name}:' entry {word!r} is not a word (letters, digits, apostrophes)"
                )
        return [w.lower() for w in words]

    def _open(self, line: int, kind: str, **fields: Any) -> None:
        self._close()
        self.block = {"kind": kind, "line": line, "rules": [], **fields}
        self.rule = None

    def _d_key(self, line: int, value: str) -> None:
        tokens = value.split()
        rank = 0
        if tokens and re.fullmatch(r"[+-]?\d+", tokens[-1]):
            rank = int(tokens.pop())
        if not tokens:
            raise self.fail(line, "'key:' needs at least one word (then an optional integer rank)")
        for token in tokens:
            word = token[1:] if token.startswith("@") else token
            if not WORD_RE.match(word):
                raise self.fail(line, f"keyword {token!r} is not a word or an @class")
        self._open(line, "key", words=[t.lower() for t in tokens], rank=rank)

    def _d_memory(self, line: int, value: str) -> None:
        if any(b["kind"] == "memory" for b in self.blocks) or (self.block or {}).get("kind") == "memory":
            raise self.fail(line, "a script has one memory rule; this is a second 'memory:'")
        if len(value.split()) != 1:
            raise self.fail(line, f"'memory:' names one keyword, got {value!r}")
        self._open(line, "memory", keyword=value.lower())

    def _d_none(self, line: int, value: str) -> None:
        if any(b["kind"] == "none" for b in self.blocks) or (self.block or {}).get("kind") == "none":
            raise self.fail(line, "a script has one last-resort rule; this is a second 'none:'")
        if value:
            raise self.fail(line, "'none:' takes no value; put its replies on 'say:' lines below it")
        self._open(line, "none")

    def _d_match(self, line: int, value: str) -> None:
        if self.block is None:
            raise self.fail(line, "'match:' must follow a 'key:', 'memory:' or 'none:' line")
        self._close_rule()
        self.rule = {"line": line, "pattern": value, "elements": self._pattern(line, value), "replies": []}

    def _reassembly(self, line: int, kind: str, value: str) -> None:
        if self.block is None:
            raise self.fail(line, f"'{kind}:' must follow a 'key:', 'memory:' or 'none:' line")
        if self.rule is None:
            self.rule = {"line": line, "pattern": "*", "elements": self._pattern(line, "*"), "replies": []}
        self.rule["replies"].append(Reassembly(kind, value, line))

    def _d_say(self, line: int, value: str) -> None:
        if not value:
            raise self.fail(line, "'say:' needs the text of the reply")
        self._reassembly(line, "say", value)
        parts = len(self.rule["elements"])
        for cited in CITE_RE.findall(value):
            if not cited or not 1 <= int(cited) <= parts:
                raise self.fail(
                    line,
                    f"'{{{cited}}}' cites no part of the pattern {self.rule['pattern']!r} "
                    f"(line {self.rule['line']}), which has parts 1 to {parts}",
                )

    def _d_goto(self, line: int, value: str) -> None:
        if len(value.split()) != 1:
            raise self.fail(line, f"'goto:' names one keyword, got {value!r}")
        if self.block is not None and self.block["kind"] != "key":
            raise self.fail(
                line, f"'goto:' is only allowed in a keyword's rules, not in '{self.block['kind']}:'"
            )
        self._reassembly(line, "goto", value.lower())

    def _d_newkey(self, line: int, value: str) -> None:
        if value:
            raise self.fail(line, "'newkey:' takes no value")
        if self.block and self.block["kind"] != "key":
            raise self.fail(
                line, f"'newkey:' is only allowed in a keyword's rules, not in '{self.block['kind']}:'"
            )
        self._reassembly(line, "newkey", "")

    # --- patterns ---------------------------------------------------------------------------

    def _pattern(self, line: int, text: str) -> list[Element | tuple[str, str]]:
        if not text:
            raise self.fail(line, "'match:' needs a pattern, e.g. '* i remember *'")
        elements: list[Element | tuple[str, str]] = []
        for token in _PATTERN_TOKEN_RE.findall(text):
            if token == "*":
                elements.append(Element("*", 0, None))
            elif token.startswith("#"):
                if not re.fullmatch(r"#[1-9]\d*", token):
                    raise self.fail(
                        line, f"{token!r} should be '#n' with n a whole number >= 1 (exactly n words)"
                    )
                n = int(token[1:])
                elements.append(Element(token, n, n))
            elif token.startswith("["):
                if not token.endswith("]"):
                    raise self.fail(line, f"'[' without its closing ']' in pattern {text!r}")
                options = token[1:-1].split()
                if not options:
                    raise self.fail(line, "'[]' lists no alternatives; write e.g. '[want need]'")
                for option in options:
                    if not WORD_RE.match(option):
                        raise self.fail(line, f"alternative {option!r} in {token!r} is not a word")
                elements.append(Element(token, 1, 1, frozenset(o.lower() for o in options)))
            elif token.startswith("@"):
                if not WORD_RE.match(token[1:]):
                    raise self.fail(line, f"{token!r} should be '@name' of a class")
                elements.append(("class", token))  # resolved once every class is known
            else:
                if not WORD_RE.match(token):
                    raise self.fail(
                        line,
                        f"pattern word {token!r} can never match (input keeps only letters, digits and "
                        "apostrophes; punctuation splits clauses)",
                    )
                elements.append(Element(token, 1, 1, frozenset({token.lower()})))
        return elements

    # --- closing blocks and building -------------------------------------------------------

    def _close_rule(self) -> None:
        if self.rule is not None:
            if not self.rule["replies"]:
                raise self.fail(
                    self.rule["line"], f"'match: {self.rule['pattern']}' has no 'say:' lines after it"
                )
            self.block["rules"].append(self.rule)
        self.rule = None

    def _close(self) -> None:
        if self.block is None:
            return
        self._close_rule()
        if not self.block["rules"]:
            raise self.fail(
                self.block["line"], f"this '{self.block['kind']}:' block has no 'match:' or 'say:' lines"
            )
        self.blocks.append(self.block)
        self.block = None

    def _element(self, line: int, element: Element | tuple[str, str]) -> Element:
        if isinstance(element, Element):
            return element
        name = element[1][1:].lower()
        if name not in self.classes:
            raise self.fail(line, f"unknown class {element[1]!r}; define it with 'class: {name} = WORD ...'")
        return Element(element[1], 1, 1, self.classes[name][0])

    def _rules(self, block: dict[str, Any]) -> tuple[Decomposition, ...]:
        return tuple(
            Decomposition(
                rule["pattern"],
                tuple(self._element(rule["line"], e) for e in rule["elements"]),
                tuple(rule["replies"]),
                rule["line"],
            )
            for rule in block["rules"]
        )

    def build(self) -> Script:
        self._close()
        keywords: list[Keyword] = []
        triggers: dict[str, Keyword] = {}
        trigger_lines: dict[str, int] = {}
        memory_keyword, memory_rules, none_rules = None, (), None
        for block in self.blocks:
            if block["kind"] == "memory":
                memory_keyword, memory_rules, memory_line = (
                    block["keyword"],
                    self._rules(block),
                    block["line"],
                )
            elif block["kind"] == "none":
                none_rules = self._rules(block)
            else:
                words: list[str] = []
                for token in block["words"]:
                    if token.startswith("@"):
                        if token[1:] not in self.classes:
                            raise self.fail(block["line"], f"unknown class {token!r} in 'key:'")
                        words.extend(sorted(self.classes[token[1:]][0]))
                    else:
                        words.append(token)
                keyword = Keyword(
                    block["words"][0],
                    tuple(dict.fromkeys(words)),
                    block["rank"],
                    self._rules(block),
                    block["line"],
                )
                for word in keyword.words:
                    if word in triggers and triggers[word] is not keyword:
                        raise self.fail(
                            block["line"],
                            f"keyword {word!r} is already defined on line {trigger_lines[word]}",
                        )
                    triggers[word], trigger_lines[word] = keyword, block["line"]
                keywords.append(keyword)
        if none_rules is None:
            raise self.fail(0, "the script has no 'none:' rule (the reply when no keyword matches); add one")
        script = Script(
            source=self.source,
            greetings=tuple(self.greetings),
            quit_words=tuple(dict.fromkeys(self.quit_words)),
            pre=self.pre,
            reflections=self.reflections,
            classes={name: words for name, (words, _) in self.classes.items()},
            keywords=tuple(keywords),
            triggers=triggers,
            memory_keyword=memory_keyword,
            memory_rules=memory_rules,
            none_rules=none_rules,
        )
        if memory_keyword is not None and script.keyword(memory_keyword) is None:
            raise self.fail(memory_line, f"'memory: {memory_keyword}' names no keyword of this script")
        for keyword in keywords:
            for rule in keyword.rules:
                for reassembly in rule.reassemblies:
                    if reassembly.kind == "goto" and script.keyword(reassembly.text) is None:
                        raise self.fail(
                            reassembly.line, f"'goto: {reassembly.text}' names no keyword of this script"
                        )
        return script


def parse_script(text: str, source: str = "<script>") -> Script:
    """Parse the plain text script format (``docs/eliza-script.md``)."""
    builder = Builder(source)
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if ":" not in line:
            raise builder.fail(number, f"expected 'directive: value', got {line[:60]!r}")
        name, value = line.split(":", 1)
        builder.add(number, name, value)
    return builder.build()
