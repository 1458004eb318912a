"""The structured (YAML/JSON) form of an ELIZA script, read safely.

Same content as the plain text form (``docs/eliza-script.md`` shows both): a mapping with
``greeting``, ``quit``, ``pre``, ``reflect``, ``classes``, ``keys``, ``memory`` and ``none``.
The YAML node tree (which keeps line numbers) is walked into the same directives the text
form has, so that one builder checks both and errors name the same lines.

Two things are refused while the file is composed, before any work is done on them: YAML
aliases (a few hundred ``*name`` references can make a 30 KB file stand for billions of
entries, "billion laughs", and walking them would take forever and all memory), and nesting
deeper than :data:`MAX_DEPTH` (a script needs 8 levels; PyYAML's scanner slows down
quadratically on deeply nested ``[[[[...``). File size is capped by
:func:`attnlab.eliza.loading.load_script`.
"""

from __future__ import annotations

import re
from typing import Any

from attnlab.eliza.script import Builder, Script

MAX_DEPTH = 32  # YAML nesting allowed in a script (the deepest a script needs is 8)


class _Refused(Exception):
    """Raised inside the loader; turned into the builder's error, which names the file."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line, self.message = line, message


def _loader_class() -> type:
    """A PyYAML SafeLoader that stops at the first alias and at nesting deeper than MAX_DEPTH."""
    import yaml

    class ScriptLoader(yaml.SafeLoader):
        depth = 0

        def fetch_flow_collection_start(self, TokenClass: Any) -> None:
            if self.flow_level >= MAX_DEPTH:
                raise _Refused(self.get_mark().line + 1, f"nested more than {MAX_DEPTH} levels deep")
            super().fetch_flow_collection_start(TokenClass)

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent):
                raise _Refused(
                    event.start_mark.line + 1,
                    f"YAML alias '*{event.anchor}' refused: ELIZA scripts may not use aliases "
                    "(they can expand a small file into billions of entries); write the entry out",
                )
            if self.depth >= MAX_DEPTH:
                raise _Refused(event.start_mark.line + 1, f"nested more than {MAX_DEPTH} levels deep")
            self.depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return ScriptLoader


def _compose(text: str, builder: Builder) -> Any:
    """The YAML node tree of ``text``; every problem (aliases included) is the builder's error."""
    import yaml

    try:
        return yaml.compose(text, Loader=_loader_class())
    except _Refused as refused:
        raise builder.fail(refused.line, refused.message) from None
    except RecursionError:
        raise builder.fail(0, "not valid YAML/JSON: nested too deeply") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or str(err)
        raise builder.fail(mark.line + 1 if mark else 0, f"not valid YAML/JSON: {problem}") from None


def parse_structured(text: str, source: str = "<script>") -> Script:
    """Parse the YAML/JSON form: walk the YAML node tree, which keeps line numbers, into directives."""
    import yaml

    builder = Builder(source)
    root = _compose(text, builder)

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


