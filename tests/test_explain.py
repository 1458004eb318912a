"""``attnlab explain``: the walk-throughs print the attention overview's numbers, in every format."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest

import attnlab
from attnlab.cli import main
from attnlab.cli.commands import explain as explain_command
from attnlab.explain import DEFAULT_SEED, DEFAULT_TEXT, ExplainRequest, all_topics, get_topic
from attnlab.explain import steps as walkthrough

ATTENTION_TOPICS = ["self-attention", "causal-attention", "multi-head", "layer-norm", "feed-forward"]
SEED_CONTEXT_ROWS = [
    ("The", ["1.3246", "1.5236", "1.8652", "2.3285"]),
    ("next", ["1.3301", "1.5304", "1.8753", "2.3433"]),
    ("day", ["1.3325", "1.5353", "1.8866", "2.3537"]),
    ("is", ["1.3211", "1.5153", "1.8390", "2.3002"]),
    ("bright", ["1.3253", "1.5242", "1.8657", "2.3304"]),
]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["explain", *argv])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def json_steps(capsys, *argv: str) -> list[dict]:
    code, out, _ = run_cli(capsys, *argv, "--format", "json")
    assert code == 0
    return json.loads(out)


def step(steps: list[dict], title_start: str) -> dict:
    matches = [s for s in steps if s["title"].startswith(title_start)]
    assert len(matches) == 1, [s["title"] for s in steps]
    return matches[0]


def close(values, expected, tol: float = 5.1e-5) -> bool:
    """Equal to the 4 decimals the attention overview prints (JSON keeps 6, so compare with a tolerance)."""
    if isinstance(expected, list):
        return len(values) == len(expected) and all(close(v, e, tol) for v, e in zip(values, expected))
    return abs(values - expected) <= tol


def test_the_attention_topics_are_registered():
    topics = all_topics()
    for name in ATTENTION_TOPICS:
        assert name in topics and topics[name].summary


def test_default_self_attention_prints_the_seeds_context_vectors(capsys):
    code, out, err = run_cli(capsys, "self-attention")
    assert code == 0, err
    lines = out.splitlines()
    for token, numbers in SEED_CONTEXT_ROWS:
        # The table row of each token in the context-vector table carries the attention overview's four numbers.
        assert any(line.split()[:1] == [token] and all(n in line for n in numbers) for line in lines), token
    assert "0.1069" in out and "0.3140" in out and "0.3335" in out and "0.0662" in out and "0.1793" in out
    assert "0.43 " in out and "0.89 " in out  # the attention overview's input matrix, two decimals as the seed has it
    assert "softmax(8x)" in out and "0.8000" in out  # the attention overview's softmax-scaling example


def test_json_self_attention_has_the_steps_and_the_seeds_matrices(capsys):
    steps = json_steps(capsys, "self-attention")
    for item in steps:
        assert {"title", "explanation", "shape", "values"} <= item.keys()
        assert item["explanation"]
    assert step(steps, "Inputs")["values"] == walkthrough.SEED_INPUTS
    context = step(steps, "Context vectors")
    assert context["shape"] == [5, 4] and context["rows"][0] == "The"
    assert close(context["values"], [[float(n) for n in row] for _, row in SEED_CONTEXT_ROWS])
    weights = step(steps, "Attention weights")
    assert close(weights["values"][0], [0.1069, 0.3140, 0.3335, 0.0662, 0.1793])
    scaling = step(steps, "Why divide")
    assert close(
        scaling["values"],
        [[0.1925, 0.1426, 0.2351, 0.1426, 0.2872], [0.0326, 0.0030, 0.1615, 0.0030, 0.8000]],
    )
    titles = [s["title"] for s in steps]
    order = ["Inputs", "Weight matrix W_query", "Queries", "Keys", "Values", "Attention scores"]
    order += ["Attention weights", "Context vectors"]
    positions = [next(i for i, t in enumerate(titles) if t.startswith(o)) for o in order]
    assert positions == sorted(positions)


def test_three_words_give_three_by_three_weights(capsys):
    steps = json_steps(capsys, "self-attention", "--text", "cats chase mice")
    weights = step(steps, "Attention weights")
    assert weights["shape"] == [3, 3] and weights["rows"] == ["cats", "chase", "mice"]
    assert all(abs(sum(row) - 1) < 1e-5 for row in weights["values"])
    # Made-up embeddings come from --seed: another seed, other numbers; the same seed, the same.
    again = json_steps(capsys, "self-attention", "cats", "chase", "mice")  # unquoted words work too
    other = json_steps(capsys, "self-attention", "--text", "cats chase mice", "--seed", "7")
    assert step(again, "Inputs")["values"] == step(steps, "Inputs")["values"]
    assert step(other, "Inputs")["values"] != step(steps, "Inputs")["values"]


def test_causal_attention_masks_the_future_and_drops_out(capsys):
    steps = json_steps(capsys, "causal-attention")
    assert step(steps, "Causal mask")["values"] == [[float(j > i) for j in range(5)] for i in range(5)]
    masked_scores = step(steps, "Masked scores")
    assert masked_scores["shape"] == [1, 5, 5]
    assert masked_scores["values"][0][1:] == ["-inf"] * 4
    weights = step(steps, "Masked attention weights")["values"]
    assert all(weights[i][j] == 0 for i in range(5) for j in range(i + 1, 5))
    assert weights[0][0] == 1.0
    dropped = step(steps, "Dropout")["values"]
    for i in range(5):
        for j in range(5):
            assert dropped[i][j] == 0 or abs(dropped[i][j] - 2 * weights[i][j]) < 1e-5
    inference = step(steps, "Context vectors at inference")
    assert inference["values"][0] == step(steps, "Values")["values"][0]  # 'The' sees only itself


def test_multi_head_shapes_follow_the_view_and_transpose(capsys):
    steps = json_steps(capsys, "multi-head")
    split = step(steps, "Split the queries")
    assert split["shape"] == [1, 2, 5, 2] and split["panels"] == ["head 1", "head 2"]
    queries = step(steps, "Queries")["values"]
    assert [row[:2] for row in queries] == split["values"][0]
    assert [row[2:] for row in queries] == split["values"][1]
    assert step(steps, "Attention weights per head")["shape"] == [1, 2, 5, 5]
    assert step(steps, "Merge the heads")["shape"] == [1, 5, 4]
    assert step(steps, "Output projection")["shape"] == [1, 5, 4]
    assert step(steps, "The simple version")["shape"] == [1, 5, 4]


def test_layer_norm_prints_the_notes_example(capsys):
    steps = json_steps(capsys, "layer-norm")
    assert close(
        steps[0]["values"],
        [[-0.1115, 0.1204, -0.3696, -0.2404, -1.1969], [0.2093, -0.9724, -0.7550, 0.3239, -0.1085]],
    )
    assert close(
        step(steps, "The notes' normalisation")["values"],
        [[0.4945, 0.9564, -0.0200, 0.2375, -1.6685], [0.8128, -1.2314, -0.8554, 1.0111, 0.2630]],
    )
    after = step(steps, "After LayerNorm")["values"]
    assert all(abs(mean) < 1e-5 and abs(var - 1) < 1e-3 for mean, var in after)


def test_feed_forward_expands_and_projects_back(capsys):
    steps = json_steps(capsys, "feed-forward", "--text", "one two")
    assert step(steps, "Expand")["shape"] == [1, 2, 32]
    assert step(steps, "Project back")["shape"] == [1, 2, 8]
    gelu = step(steps, "GELU, the activation")
    assert close(gelu["values"][0][gelu["columns"].index("x=1")], 0.8412)


@pytest.mark.parametrize("topic", ATTENTION_TOPICS)
def test_every_topic_renders_in_every_format(capsys, topic):
    code, rich_out, err = run_cli(capsys, topic)
    assert code == 0, err
    assert "Step 1." in rich_out
    code, markdown, _ = run_cli(capsys, topic, "--format", "markdown")
    assert code == 0
    assert markdown.startswith("## ") and "### Step 1." in markdown
    assert "\n| | " in markdown and "|---|" in markdown
    assert len(json_steps(capsys, topic)) >= 5


def test_out_writes_the_file_and_nothing_else(capsys, tmp_path):
    target = tmp_path / "walk.json"
    code, out, _ = run_cli(capsys, "self-attention", "--format", "json", "--out", str(target))
    assert code == 0 and out == ""
    assert json.loads(target.read_text())[0]["title"].startswith("Inputs")
    code, _, _ = run_cli(capsys, "multi-head", "--out", str(tmp_path / "walk.txt"))
    assert code == 0 and "Merge the heads" in (tmp_path / "walk.txt").read_text()
    assert sorted(os.listdir(tmp_path)) == ["walk.json", "walk.txt"]


def test_unknown_topic_is_a_clear_error(capsys):
    code, out, err = run_cli(capsys, "self-atention")
    assert code == 2 and out == ""
    assert "unknown topic 'self-atention'" in err and "self-attention" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["self-attention", "--text", "   "], "empty"),
        (["self-attention", " ".join(["w"] * 40)], "at most"),
        (["self-attention", "a b", "--text", "c d"], "give the text once"),
        (["self-attention", "--seed", "-1"], "--seed"),
    ],
)
def test_bad_input_is_one_clear_error(capsys, argv, message):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_unwritable_out_is_a_clear_error(capsys, tmp_path):
    code, _, err = run_cli(capsys, "self-attention", "--out", str(tmp_path))  # a directory
    assert code == 2 and "cannot write" in err


def test_no_topic_lists_the_topics(capsys):
    code, out, _ = run_cli(capsys)
    assert code == 0
    for name in ATTENTION_TOPICS:
        assert name in out


def test_help_lists_topics_with_summaries(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    for name, topic in all_topics().items():
        assert name in out and topic.summary.split()[0] in out


def test_the_command_takes_its_defaults_from_the_library():
    assert explain_command.DEFAULT_TEXT is DEFAULT_TEXT and explain_command.DEFAULT_SEED is DEFAULT_SEED
    assert walkthrough.DEFAULT_TEXT is DEFAULT_TEXT


def test_a_topic_can_be_run_as_a_library_call(capsys):
    assert all_topics()["self-attention"].run(ExplainRequest(format="json")) == 0
    assert json.loads(capsys.readouterr().out)[0]["rows"] == ["The", "next", "day", "is", "bright"]
    assert get_topic("layer-norm").run(ExplainRequest(text="a b", seed=DEFAULT_SEED, format="markdown")) == 0
    assert "| **a** |" in capsys.readouterr().out


def test_the_help_calls_the_source_the_attention_overview(capsys):
    _, help_text, _ = run_cli(capsys, "--help")
    _, listing, _ = run_cli(capsys)
    for text in (help_text, listing, json.dumps(json_steps(capsys, "self-attention"))):
        assert "attention overview" in text and "the seed's" not in text


def test_explain_and_the_browser_stay_out_of_the_command_line():
    """argparse lives under attnlab/cli/ only, and nothing outside it imports attnlab.cli."""
    root = Path(attnlab.__file__).parent
    for path in [*sorted((root / "explain").glob("*.py")), root / "viz" / "browser.py"]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name != "argparse" and not name.startswith("attnlab.cli"), (path.name, name)


def test_free_text_may_follow_the_options(capsys):
    """`attnlab explain TOPIC --seed 3 the cat sat` reads like `attnlab explain TOPIC the cat sat --seed 3`."""
    before = json_steps(capsys, "self-attention", "the", "cat", "sat", "--seed", "3")
    after = json_steps(capsys, "self-attention", "--seed", "3", "--format", "json", "the", "cat", "sat")
    assert after == before
    assert "Row 'the'" in json.dumps(before)
    assert json_steps(capsys, "self-attention", "--seed", "3") != before  # the attention overview's own sentence
    code, _, err = run_cli(capsys, "self-attention", "--seed", "3", "--no-such-option")
    assert code == 2 and "unrecognized arguments: --no-such-option" in err
