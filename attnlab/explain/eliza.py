"""``attnlab explain eliza "I am unhappy about my mother"``: how ELIZA (1966) made its reply.

Runs one turn of :class:`attnlab.eliza.Eliza` on a fresh conversation and shows its trace:
the clauses after pre-substitution and the one used, the keystack (keywords with their ranks,
top first), every keyword tried with the decomposition that matched, its numbered parts and the
reassembly chosen, what the memory stored or recalled, and the reply. Formats: rich tables,
markdown, or JSON (the trace as a dict).

Reassemblies cycle in order, so a fresh ELIZA uses each pattern's first one. A seed
(``ExplainRequest.seed``, ``--seed``) picks them at random instead.
"""

from __future__ import annotations

import json
from typing import Any

from attnlab.explain import ExplainRequest, Topic
from attnlab.explain.render import show

DEFAULT_TEXT = "I am unhappy about my mother"


def trace_for(text: str, *, seed: int | None = None, script: str | None = None) -> dict[str, Any]:
    """The trace of one fresh ELIZA turn on ``text``, as a JSON-ready dict."""
    from attnlab.eliza import Eliza

    bot = Eliza.from_file(script, seed=seed) if script else Eliza(seed=seed)
    data = bot.explain(text).to_dict()
    data["script"] = bot.script.source
    data["mode"] = "cycling in order" if seed is None else f"random choice, seed {seed}"
    return data


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------

_SOURCES = {
    "keyword": "a keyword's reassembly",
    "memory": "the memory (nothing else matched, so the oldest remembered sentence is said)",
    "none": "the last-resort rule (no keyword matched and the memory is empty)",
}


def _parts(step: dict[str, Any]) -> str:
    return "  ".join(f'{i}="{p}"' for i, p in enumerate(step["parts"], start=1))


def _choice(step: dict[str, Any]) -> str:
    if step["reassembly"] is None:
        return ""
    return f"{step['reassembly']}  ({step['choice']} of {step['of']})"


def to_markdown(data: dict[str, Any]) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = [
        "# ELIZA: how the reply was made",
        "",
        f"Input: `{cell(data['text'][:500])}`  ",
        f"Script: `{data['script']}`, reassemblies: {data['mode']}",
        "",
        "## 1. Clauses (after pre-substitution)",
        "",
        "Only the first clause holding a keyword is used; the rest is thrown away.",
        "",
        "| # | clause | used |",
        "|---|---|---|",
    ]
    for i, clause in enumerate(data["clauses"]):
        lines.append(f"| {i + 1} | {cell(clause[:200])} | {'yes' if i == data['clause'] else ''} |")
    lines += ["", "## 2. Keystack (top first)", ""]
    if data["keystack"]:
        lines += ["A keyword ranked above the top goes on top; any other goes to the bottom.", ""]
        lines += ["| word | keyword | rank |", "|---|---|---|"]
        lines += [f"| {cell(k['word'])} | {cell(k['keyword'])} | {k['rank']} |" for k in data["keystack"]]
    else:
        lines.append("No keyword in any clause.")
    lines += ["", "## 3. Rules tried", ""]
    lines += [
        "| keyword | rank | decomposition (line) | parts | reassembly | action |",
        "|---|---|---|---|---|---|",
    ]
    for step in data["steps"]:
        pattern = (
            f"`{cell(step['decomposition'])}` ({step['line']})" if step["decomposition"] else "none matched"
        )
        lines.append(
            f"| {cell(step['keyword'])} | {step['rank']} | {pattern} | {cell(_parts(step))} | "
            f"{cell(_choice(step))} | {cell(step['action'])} |"
        )
    lines += ["", "## 4. Memory", ""]
    if data["memory_stored"]:
        lines.append(f'Stored for later: "{cell(data["memory_stored"])}"  ')
    if data["memory_recalled"]:
        lines.append(f'Recalled: "{cell(data["memory_recalled"])}"  ')
    lines.append(f"Sentences in memory after this turn: {data['memory_size']}")
    lines += ["", "## 5. Reply", "", f"From {_SOURCES[data['source']]}:", "", f"> {cell(data['reply'])}", ""]
    return "\n".join(lines)


def print_rich(data: dict[str, Any], console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    console.print("[bold]ELIZA: how the reply was made[/bold]")
    console.print(f"input: {escape(data['text'][:500])!s}")
    console.print(f"script: {escape(data['script'])}, reassemblies: {data['mode']}\n")

    clauses = Table(title="1. clauses", caption="after pre-substitution; the first with a keyword is used")
    clauses.add_column("#", justify="right")
    clauses.add_column("clause")
    clauses.add_column("used")
    for i, clause in enumerate(data["clauses"]):
        clauses.add_row(str(i + 1), escape(clause[:200]), "yes" if i == data["clause"] else "")
    console.print(clauses)

    if data["keystack"]:
        stack = Table(
            title="2. keystack, top first", caption="a higher rank goes on top, others to the bottom"
        )
        stack.add_column("word", style="bold")
        stack.add_column("keyword")
        stack.add_column("rank", justify="right")
        for entry in data["keystack"]:
            stack.add_row(escape(entry["word"]), escape(entry["keyword"]), str(entry["rank"]))
        console.print(stack)
    else:
        console.print("2. keystack: no keyword in any clause")

    steps = Table(title="3. rules tried")
    for column in ("keyword", "rank", "decomposition (line)", "parts", "reassembly", "action"):
        steps.add_column(column)
    for step in data["steps"]:
        pattern = f"{step['decomposition']} ({step['line']})" if step["decomposition"] else "none matched"
        steps.add_row(
            escape(step["keyword"]),
            str(step["rank"]),
            escape(pattern),
            escape(_parts(step)),
            escape(_choice(step)),
            escape(step["action"]),
        )
    console.print(steps)

    console.print("[bold]4. memory[/bold]")
    if data["memory_stored"]:
        console.print(f'  stored for later: "{escape(data["memory_stored"])}"')
    if data["memory_recalled"]:
        console.print(f'  recalled: "{escape(data["memory_recalled"])}"')
    console.print(f"  sentences in memory after this turn: {data['memory_size']}")
    console.print(f"[bold]5. reply[/bold] (from {_SOURCES[data['source']]})")
    console.print(f"  [bold green]{escape(data['reply'])}[/bold green]")


def run(request: ExplainRequest) -> int:
    text = DEFAULT_TEXT if request.text is None else request.text
    data = trace_for(text, seed=request.seed, script=request.script)
    show(
        request.format,
        request.out,
        rich=lambda console: print_rich(data, console),
        markdown=lambda: to_markdown(data),
        as_json=lambda: json.dumps(data, indent=2, ensure_ascii=False) + "\n",
    )
    return 0


TOPICS = {
    "eliza": Topic(
        "eliza",
        "ELIZA (1966): keywords and ranks, decomposition, reassembly, memory, for one input",
        run,
    )
}
