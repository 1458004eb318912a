"""ELIZA (Weizenbaum, 1966): keyword rules, decomposition and reassembly, no learning.

How a reply is made, as the 1966 paper ("ELIZA - a computer program for the study of natural
language communication between man and machine", CACM 9(1)) describes it:

1. The input is cut into clauses at punctuation (``. , ; : ! ?``) and at the word "but".
   The text is scanned left to right; the first clause that holds a keyword is the only one
   used, the rest is thrown away.
2. Pre-substitutions rewrite words before the scan ("dont" -> "don't", "i'm" -> "i am").
3. Keywords carry ranks. They go on a *keystack* in the order they are met: a keyword whose
   rank is higher than the one on top goes on top, any other goes to the bottom. The top
   keyword is tried first.
4. Each keyword has decomposition patterns, tried in order. A pattern is a list of elements:
   ``*`` (any number of words, Weizenbaum's ``0``), ``#n`` (exactly n words, his ``n``), a
   literal word, ``[want need wish]`` (one word out of alternatives, his ``(* WANT NEED)``)
   and ``@family`` (one word of a synonym class, his ``(/FAMILY)``). Every element is a
   numbered part: ``* my * @family *`` on "well my old mother hates me" gives the parts
   1 "well", 2 "my", 3 "old", 4 "mother", 5 "hates me".
5. The first pattern that matches picks a reassembly, in turn (each pattern keeps its own
   cycle: the first time its first reassembly, then the second, ...). A reassembly is a
   template citing parts, ``{4}``; cited parts have their pronouns reflected (I -> you,
   my -> your, you are -> I am ...). Instead of a template a reassembly may be a *link*
   (``goto: keyword``, his ``=KEYWORD``: use that keyword's patterns on the same clause) or
   ``newkey:`` (his ``NEWKEY``: give up on this keyword and try the next one on the stack).
6. Memory: when the memory keyword (``my`` in DOCTOR) is on top of the stack, one of its
   memory transformations of the clause is also stored in a queue. When later no keyword
   gives a reply, the oldest stored sentence is said instead of the last-resort rule.
7. The last-resort rule (his ``NONE``) answers when nothing else does.

Deterministic by default: reassemblies cycle in order, exactly as in 1966. ``Eliza(seed=N)``
picks them at random instead (reproducibly for a given seed).

Two deliberate departures, both invisible in the replies: Weizenbaum swapped pronouns while
scanning, so his patterns were written in the already swapped words (``0 YOU ARE 0`` matched
"I am ..."); here patterns are written in the user's own words and only the cited parts are
reflected. And his memory was recalled only when a counter was in a particular state; here
it is recalled whenever nothing else matches.

Script format (plain text, one directive per line, ``name: value``)
-------------------------------------------------------------------

Blank lines and lines starting with ``#`` are ignored; indentation is only for the reader.
Words are matched case-insensitively.

``greeting: TEXT``
    What ELIZA says first (several lines: the first one is used).
``quit: WORD ...``
    Inputs that end a conversation (the chat loop also ends on quit, bye and exit).
``pre: WORDS = WORDS``
    Substitution made before the keyword scan, e.g. ``pre: i'm = i am``.
``reflect: WORDS = WORDS``
    Pronoun reflection applied to cited parts, longest match first, e.g.
    ``reflect: i am = you are`` and ``reflect: you = me``. The right side is written as
    it should appear in replies (``reflect: you are = I am``).
``class: NAME = WORD WORD ...``
    A synonym class, used as ``@NAME`` in patterns and keyword lines.
``key: WORD [WORD or @CLASS ...] [RANK]``
    Starts a keyword; every word listed triggers it, ``@class`` stands for all its members.
    RANK is an integer (default 0). Its name (for ``goto:``) is any of its words.
``match: PATTERN``
    Starts a decomposition of the current keyword (elements as in point 4 above).
``say: TEMPLATE``
    A reassembly of the current decomposition; ``{n}`` cites part n.
``goto: KEYWORD``
    A reassembly that links to another keyword's decompositions.
``newkey:``
    A reassembly that moves on to the next keyword on the stack.
``memory: KEYWORD``
    Starts the memory rule (one per script) of that keyword; followed by ``match:`` and
    ``say:`` lines whose results are stored rather than said.
``none:``
    Starts the last-resort rule; followed by ``say:`` lines (or ``match:`` + ``say:``).

A ``say:``, ``goto:`` or ``newkey:`` right after ``key:``, ``memory:`` or ``none:`` (with no
``match:`` yet) belongs to an implicit ``match: *``. Example::

    reflect: me = you
    class: family = mother father sister brother
    key: my 2
      match: * my * @family *
        say: How do you get along with your {4}?
        say: What is your {4} like?
      match: * my *
        say: Your {3}?
    key: @family 1
      say: What part does family play in this?
    memory: my
      match: * my *
        say: Earlier you spoke of your {3}.
    none:
      say: I am listening.

YAML (``.yaml``/``.yml``) and JSON (``.json``) scripts have the same structure::

    greeting: How do you do.          # a string or a list
    quit: [bye, goodbye]              # a list or a space-separated string
    pre: {"i'm": i am}
    reflect: {me: you, "you are": I am}
    classes: {family: [mother, father]}
    keys:
      - key: my                       # the words of a 'key:' line (without the rank)
        rank: 2
        rules:
          - match: "* my * @family *"
            replies: ["How do you get along with your {4}?", {goto: family}]
          - match: "* my *"
            replies: ["Your {3}?", {newkey: true}]
      - {key: "@family", rank: 1, replies: ["What part does family play in this?"]}
    memory: {key: my, rules: [{match: "* my *", replies: ["Earlier you spoke of your {3}."]}]}
    none: {replies: ["I am listening."]}

A ``rules`` entry or a key/none with ``replies`` and no ``match`` uses ``match: *``. Every
mistake is reported as an :class:`AttnlabError` naming the file, the line and the problem.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from collections import deque
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from attnlab.errors import AttnlabError

MAX_INPUT_CHARS = 2000  # work is capped: only the start of a very long line is read
MEMORY_SIZE = 20  # the memory queue keeps the newest this many sentences
MAX_LINKS = 10  # goto chains longer than this give up on the keyword
DEFAULT_REPLY = "Go on, I am listening."  # said only if the script's last-resort rule says nothing
DEFAULT_SCRIPT = "doctor"

_WORD = r"[^\W_]+(?:'[^\W_]+)*"
_STOPS = ".,;:!?\u2026\u3002\uff01\uff1f\uff1b\uff0c\u3001"
_TOKEN_RE = re.compile(rf"(?P<word>{_WORD})|(?P<stop>[{re.escape(_STOPS)}]+)")
_WORD_RE = re.compile(rf"{_WORD}\Z")
_CITE_RE = re.compile(r"\{(\d*)\}")
_PATTERN_TOKEN_RE = re.compile(r"\[[^\]]*\]?|\S+")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})


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
# Loading: text, YAML and JSON all become (line, directive, value) triples for one builder
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


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFC", text).translate(_APOSTROPHES)


class _Builder:
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
        value = _normalise(value.strip())
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
            if not _WORD_RE.match(word):
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
        if not _WORD_RE.match(name):
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
            if not _WORD_RE.match(word):
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
            if not _WORD_RE.match(word):
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
        for cited in _CITE_RE.findall(value):
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
                    if not _WORD_RE.match(option):
                        raise self.fail(line, f"alternative {option!r} in {token!r} is not a word")
                elements.append(Element(token, 1, 1, frozenset(o.lower() for o in options)))
            elif token.startswith("@"):
                if not _WORD_RE.match(token[1:]):
                    raise self.fail(line, f"{token!r} should be '@name' of a class")
                elements.append(("class", token))  # resolved once every class is known
            else:
                if not _WORD_RE.match(token):
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
    """Parse the plain-text script format (see the module docstring)."""
    builder = _Builder(source)
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if ":" not in line:
            raise builder.fail(number, f"expected 'directive: value', got {line[:60]!r}")
        name, value = line.split(":", 1)
        builder.add(number, name, value)
    return builder.build()


def _structured_script(text: str, source: str) -> Script:
    """Parse the YAML/JSON form: walk the YAML node tree, which keeps line numbers, into directives."""
    import yaml

    builder = _Builder(source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or str(err)
        raise builder.fail(mark.line + 1 if mark else 0, f"not valid YAML/JSON: {problem}") from None

    def line_of(node: Any) -> int:
        return node.start_mark.line + 1

    def scalar(node: Any, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode):
            raise builder.fail(line_of(node), f"{what} should be a single value")
        return str(node.value)

    def mapping(node: Any, what: str) -> list[tuple[str, Any, int]]:
        if not isinstance(node, yaml.MappingNode):
            raise builder.fail(line_of(node), f"{what} should be a mapping (name: value)")
        return [(scalar(k, f"a key in {what}"), v, line_of(k)) for k, v in node.value]

    def strings(node: Any, what: str) -> list[tuple[str, int]]:
        if isinstance(node, yaml.SequenceNode):
            return [(scalar(item, f"an item of {what}"), line_of(item)) for item in node.value]
        return [(scalar(node, what), line_of(node))]

    def rules(node: Any, entries: list[tuple[str, Any, int]]) -> None:
        keys = {name for name, _, _ in entries}
        for name, value, line in entries:
            if name == "rules":
                if not isinstance(value, yaml.SequenceNode):
                    raise builder.fail(line, "'rules' should be a list of {match, replies}")
                for rule in value.value:
                    fields = mapping(rule, "a rule")
                    names = {n for n, _, _ in fields}
                    if unknown := names - {"match", "replies"}:
                        raise builder.fail(line_of(rule), f"unknown field(s) {sorted(unknown)} in a rule")
                    match = next((v for n, v, _ in fields if n == "match"), None)
                    replies = next((v for n, v, _ in fields if n == "replies"), None)
                    if replies is None:
                        raise builder.fail(line_of(rule), "a rule needs 'replies'")
                    builder.add(line_of(rule), "match", scalar(match, "'match'") if match else "*")
                    reply_list(replies)
            elif name == "replies":
                if "rules" in keys:
                    raise builder.fail(line, "give either 'rules' or 'replies', not both")
                reply_list(value)

    def reply_list(node: Any) -> None:
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        for item in items:
            if isinstance(item, yaml.MappingNode):
                fields = mapping(item, "a reply")
                if len(fields) != 1 or fields[0][0] not in ("say", "goto", "newkey"):
                    raise builder.fail(
                        line_of(item), "a reply mapping is one of {say: ...}, {goto: ...}, {newkey: true}"
                    )
                kind, value, line = fields[0]
                builder.add(line, kind, "" if kind == "newkey" else scalar(value, f"'{kind}'"))
            else:
                builder.add(line_of(item), "say", scalar(item, "a reply"))

    if root is None:
        raise builder.fail(0, "the file is empty")
    for name, value, line in mapping(root, "the script"):
        if name in ("greeting", "greetings"):
            for text_, at in strings(value, name):
                builder.add(at, "greeting", text_)
        elif name == "quit":
            builder.add(line, "quit", " ".join(s for s, _ in strings(value, "quit")))
        elif name in ("pre", "reflect"):
            for left, right, at in mapping(value, name):
                builder.add(at, name, f"{left} = {scalar(right, name)}")
        elif name == "classes":
            for class_name, members, at in mapping(value, "classes"):
                builder.add(
                    at, "class", f"{class_name} = {' '.join(s for s, _ in strings(members, class_name))}"
                )
        elif name == "keys":
            if not isinstance(value, yaml.SequenceNode):
                raise builder.fail(line, "'keys' should be a list of keywords")
            for item in value.value:
                fields = mapping(item, "a keyword")
                if unknown := {n for n, _, _ in fields} - {"key", "rank", "rules", "replies"}:
                    raise builder.fail(line_of(item), f"unknown field(s) {sorted(unknown)} in a keyword")
                words = next((v for n, v, _ in fields if n == "key"), None)
                if words is None:
                    raise builder.fail(line_of(item), "a keyword needs 'key' (its word or words)")
                rank = next((v for n, v, _ in fields if n == "rank"), None)
                rank_text = scalar(rank, "'rank'") if rank is not None else "0"
                if not re.fullmatch(r"[+-]?\d+", rank_text.strip()):
                    raise builder.fail(line_of(rank), f"'rank' should be an integer, got {rank_text!r}")
                key_words = " ".join(s for s, _ in strings(words, "'key'"))
                builder.add(line_of(item), "key", f"{key_words} {rank_text}")
                rules(item, fields)
        elif name == "memory":
            fields = mapping(value, "memory")
            if unknown := {n for n, _, _ in fields} - {"key", "rules", "replies"}:
                raise builder.fail(line, f"unknown field(s) {sorted(unknown)} in 'memory'")
            keyword = next((v for n, v, _ in fields if n == "key"), None)
            if keyword is None:
                raise builder.fail(line, "'memory' needs 'key' (the keyword whose inputs are remembered)")
            builder.add(line, "memory", scalar(keyword, "'key'"))
            rules(value, [f for f in fields if f[0] != "key"])
        elif name == "none":
            fields = mapping(value, "none")
            if unknown := {n for n, _, _ in fields} - {"rules", "replies"}:
                raise builder.fail(
                    line, f"unknown field(s) {sorted(unknown)} in 'none'; give 'replies' or 'rules'"
                )
            builder.add(line, "none", "")
            rules(value, fields)
        else:
            raise builder.fail(
                line,
                f"unknown field {name!r}; expected greeting, quit, pre, reflect, classes, keys, memory, none",
            )
    return builder.build()


def load_script(path: str | Path) -> Script:
    """Load a script file: plain text (any extension), or YAML/JSON by extension."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AttnlabError(f"ELIZA script {path} not found; give the path of a script file") from None
    except UnicodeDecodeError:
        raise AttnlabError(f"ELIZA script {path} is not UTF-8 text") from None
    except OSError as err:
        raise AttnlabError(f"cannot read ELIZA script {path}: {err.strerror or err}") from None
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            json.loads(text)
        except json.JSONDecodeError as err:
            raise AttnlabError(f"ELIZA script {path}, line {err.lineno}: not valid JSON: {err.msg}") from None
    if suffix == ".json":  # JSON is YAML, except that YAML refuses tabs as white space
        return _structured_script(text.replace("\t", " "), str(path))
    if suffix in (".yaml", ".yml"):
        return _structured_script(text, str(path))
    return parse_script(text, str(path))


def builtin_script(name: str = DEFAULT_SCRIPT) -> Script:
    """A script shipped in ``attnlab/models/eliza_scripts`` (parsed once, then cached)."""
    if name not in _BUILTIN_CACHE:
        folder = resources.files("attnlab.models") / "eliza_scripts"
        resource = folder / f"{name}.txt"
        if not resource.is_file():
            raise AttnlabError(f"no built-in ELIZA script {name!r}")
        _BUILTIN_CACHE[name] = parse_script(resource.read_text(encoding="utf-8"), f"{name}.txt")
    return _BUILTIN_CACHE[name]


_BUILTIN_CACHE: dict[str, Script] = {}


# --------------------------------------------------------------------------------------------
# Text handling: tokens, clauses, substitutions, matching
# --------------------------------------------------------------------------------------------

Token = tuple[str, str]  # (the lower-case word used for matching, the word as it will be shown)


def split_clauses(text: str) -> list[list[Token]]:
    """Cut the input into clauses of word tokens at punctuation and at the word "but"."""
    clauses: list[list[Token]] = []
    current: list[Token] = []
    for found in _TOKEN_RE.finditer(_normalise(text[:MAX_INPUT_CHARS])):
        word = found.group("word")
        if word is None or word.lower() == "but":
            if current:
                clauses.append(current)
            current = []
            continue
        # the first word of a clause is capitalised by habit, not for a reason: show it lower-case
        current.append((word.lower(), word if current else word.lower()))
    if current:
        clauses.append(current)
    return clauses


def substitute(tokens: list[Token], table: dict[tuple[str, ...], tuple[str, ...]]) -> list[Token]:
    """Replace word sequences by the table, longest match first, scanning left to right."""
    if not table or not tokens:
        return list(tokens)
    by_first: dict[str, list[tuple[str, ...]]] = {}
    for key in sorted(table, key=len, reverse=True):
        by_first.setdefault(key[0], []).append(key)
    words = [t[0] for t in tokens]
    out: list[Token] = []
    i, n = 0, len(words)
    while i < n:
        for key in by_first.get(words[i], ()):
            if tuple(words[i : i + len(key)]) == key:
                out.extend((w.lower(), w) for w in table[key])
                i += len(key)
                break
        else:
            out.append(tokens[i])
            i += 1
    return out


def match(elements: tuple[Element, ...], words: list[str]) -> list[tuple[int, int]] | None:
    """Match a decomposition pattern against the words; the (start, end) span of each part, or None.

    Spans are as short as possible from the left (``*`` takes the fewest words that still let
    the rest match). Work is linear in the number of words: a backward pass marks, for each
    element i and position p, whether elements i.. can match words[p:] exactly; a forward
    pass then picks the spans.
    """
    present = set(words)
    if any(e.words is not None and e.words.isdisjoint(present) for e in elements):
        return None  # a word the pattern needs is not there at all
    n = len(words)
    can: list[list[bool]] = [[]] * len(elements) + [[False] * n + [True]]
    for i in range(len(elements) - 1, -1, -1):
        element, after = elements[i], can[i + 1]
        if element.words is not None:
            allowed = element.words
            here = [after[p + 1] and words[p] in allowed for p in range(n)] + [False]
        elif element.max_words is None:  # '*': possible wherever some later position is
            last = n
            while last >= 0 and not after[last]:
                last -= 1
            reach = min(last, n - element.min_words) + 1
            here = [True] * max(reach, 0) + [False] * (n + 1 - max(reach, 0))
        else:  # '#k': exactly k words
            k = element.min_words
            here = after[k:] + [False] * k
        can[i] = here
    if not can[0][0]:
        return None
    spans, p = [], 0
    for i, element in enumerate(elements):
        q = p + element.min_words
        if element.max_words is None:
            while not can[i + 1][q]:
                q += 1
        spans.append((p, q))
        p = q
    return spans


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

        text = _CITE_RE.sub(part, template)
        text = re.sub(r"\s+", " ", text)
        text = re.sub(r"\s+([,.;:!?])", r"\1", text).strip()
        return text[:1].upper() + text[1:] if text else ""
