"""Attention pictures: extraction from every model family, the heat-map grid, the HTML page, the CLI."""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from attnlab.checkpoint import save_model
from attnlab.cli import main as cli_main
from attnlab.data.tokenizers import SEQ2SEQ_SPECIALS, CharTokenizer
from attnlab.errors import AttnlabError
from attnlab.models.gpt import GPT, GPTConfig
from attnlab.runs import load_run
from attnlab.viz.extract import ModelAttention, display_token, extract_attention
from attnlab.viz.heatmaps import attention_figure
from attnlab.viz.html import attention_html, pack_weights

CORPUS = "the next day is bright.\nfriends, romans </script> & co"
TEXT = "the day is"  # 10 characters


def make_gpt_run(folder: Path, context: int = 16) -> Path:
    tokenizer = CharTokenizer.train(CORPUS)
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=tokenizer.vocab_size, context_length=context, n_layer=2, n_head=3,
                       n_embd=24)
    model = GPT(config)
    save_model(model, folder)
    tokenizer.save(folder / "tokenizer.json")
    return folder


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory) -> Path:
    return make_gpt_run(tmp_path_factory.mktemp("gpt"))


def run_cli(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(argv)
    return exit_info.value.code


# ------------------------------------------------------------------------------------------ extraction


def test_gpt_maps_are_softmax_of_scaled_scores_computed_by_hand(gpt_run):
    run = load_run(gpt_run)
    attention = extract_attention(run, TEXT)
    (maps,) = attention.maps
    assert maps.weights.shape == (2, 3, 10, 10)
    assert maps.queries == maps.keys == ["t", "h", "e", "\u2423", "d", "a", "y", "\u2423", "i", "s"]
    # layer 0 from the raw parameters: softmax(Q K^T / sqrt(d_head)) under the causal mask
    model = run.model
    ids = torch.tensor([run.tokenizer.encode(TEXT)])
    with torch.no_grad():
        x = model.tok_emb(ids) + model.pos_emb.weight[:10]
        q, k, _ = model.blocks[0].attn.qkv(model.blocks[0].norm1(x)).split(24, dim=2)
        q, k = (z.view(1, 10, 3, 8).transpose(1, 2) for z in (q, k))
        scores = q @ k.transpose(-2, -1) / math.sqrt(8)
        scores = scores.masked_fill(torch.triu(torch.ones(10, 10, dtype=torch.bool), 1), float("-inf"))
        expected = torch.softmax(scores, dim=-1)[0].numpy()
    np.testing.assert_allclose(maps.weights[0], expected, atol=1e-5)
    np.testing.assert_allclose(maps.weights.sum(-1), 1.0, atol=1e-5)
    assert maps.causal and np.all(np.triu(maps.weights, 1) == 0)


def test_long_text_is_cropped_to_the_context_with_a_note(gpt_run):
    attention = extract_attention(load_run(gpt_run), "the next day is bright. friends")
    assert attention.maps[0].weights.shape[-1] == 16
    assert "".join(attention.maps[0].queries).replace("\u2423", " ") == "the next day is "  # the first 16
    assert any("31 tokens" in n and "16" in n and "first 16" in n for n in attention.notes)


def test_select_keeps_the_models_numbering_and_rejects_unknown_layers(gpt_run):
    attention = extract_attention(load_run(gpt_run), TEXT)
    one = attention.select(layer=1, head=2)
    assert one.maps[0].weights.shape == (1, 1, 10, 10)
    assert (one.maps[0].layer_ids, one.maps[0].head_ids) == ([1], [2])
    np.testing.assert_array_equal(one.maps[0].weights[0, 0], attention.maps[0].weights[1, 2])
    assert attention.select(layer=0).maps[0].weights.shape[:2] == (1, 3)
    assert attention.select(head=1).maps[0].weights.shape[:2] == (2, 1)
    with pytest.raises(AttnlabError, match="--layer 2 does not exist.*layers 0..1"):
        attention.select(layer=2)
    with pytest.raises(AttnlabError, match="--head -1"):
        attention.select(head=-1)
    with pytest.raises(AttnlabError, match="--part 'cross'.*self"):
        attention.select(part="cross")


def test_models_without_attention_or_without_an_extractor_say_so():
    rnn = SimpleNamespace(model=SimpleNamespace(model_type="lstm_lm"), path=Path("runs/lstm"))
    with pytest.raises(AttnlabError, match="has no attention to draw"):
        extract_attention(rnn, "hello")
    other = SimpleNamespace(model=SimpleNamespace(model_type="mamba"), path=Path("runs/x"))
    with pytest.raises(AttnlabError, match="attention pictures are drawn for .*gpt"):
        extract_attention(other, "hello")
    with pytest.raises(AttnlabError, match="empty"):
        extract_attention(other, "")


def test_display_token_makes_whitespace_visible():
    tokens = [" ", "\n", " the", "a\n", "\t"]
    assert [display_token(t) for t in tokens] == ["\u2423", "\\n", "the", "a", "\\t"]


def test_transformer_gives_encoder_decoder_and_cross_maps(tmp_path):
    from attnlab.models.transformer import Transformer, TransformerConfig

    src = CharTokenizer.train("abcdef", specials=SEQ2SEQ_SPECIALS)
    tgt = CharTokenizer.train("abcdef", specials=SEQ2SEQ_SPECIALS)
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(src_vocab_size=src.vocab_size, tgt_vocab_size=tgt.vocab_size,
                                          n_embd=16, n_head=2, n_encoder_layers=2, n_decoder_layers=1,
                                          d_ff=32, context_length=12, max_target_len=8))
    save_model(model, tmp_path)
    src.save(tmp_path / "src_tokenizer.json")
    tgt.save(tmp_path / "tgt_tokenizer.json")
    attention = extract_attention(load_run(tmp_path), "abcde", target="edc")
    parts = {m.name: m for m in attention.maps}
    assert list(parts) == ["encoder", "decoder", "cross"]
    assert parts["encoder"].weights.shape == (2, 2, 5, 5) and not parts["encoder"].causal
    assert parts["decoder"].weights.shape == (1, 2, 4, 4) and parts["decoder"].causal
    assert parts["cross"].weights.shape == (1, 2, 4, 5)
    assert parts["cross"].queries == ["<bos>", "e", "d", "c"] and parts["cross"].keys == list("abcde")
    for maps in parts.values():
        np.testing.assert_allclose(maps.weights.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.triu(parts["decoder"].weights, 1) == 0)
    # the model's own greedy translation when no target is given (and it is reported)
    greedy = extract_attention(load_run(tmp_path), "abc")
    assert greedy.notes and greedy.notes[0].startswith("greedy translation:")
    with pytest.raises(AttnlabError, match="--target is for encoder-decoder"):
        extract_attention(SimpleNamespace(model=SimpleNamespace(model_type="gpt")), "abc", target="x")


def test_bahdanau_alignment_is_one_target_by_source_map(tmp_path):
    from attnlab.models.seq2seq import Seq2Seq, Seq2SeqConfig

    src = CharTokenizer.train("abcdef", specials=SEQ2SEQ_SPECIALS)
    tgt = CharTokenizer.train("uvwxyz", specials=SEQ2SEQ_SPECIALS)
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(src_vocab_size=src.vocab_size, tgt_vocab_size=tgt.vocab_size, n_embd=8,
                                  hidden_size=8, max_target_len=5))
    save_model(model, tmp_path)
    src.save(tmp_path / "src_tokenizer.json")
    tgt.save(tmp_path / "tgt_tokenizer.json")
    attention = extract_attention(load_run(tmp_path), "abcd")
    (maps,) = attention.maps
    assert maps.name == "alignment" and maps.keys == list("abcd")
    assert maps.weights.shape == (1, 1, len(maps.queries), 4) and 1 <= len(maps.queries) <= 5
    np.testing.assert_allclose(maps.weights.sum(-1), 1.0, atol=1e-5)


def test_encoder_only_maps_are_bidirectional(tmp_path):
    from attnlab.models.encoder import EncoderConfig, EncoderLM

    tokenizer = CharTokenizer.train("abcdef", specials=("<pad>", "<unk>", "[MASK]"))
    torch.manual_seed(0)
    model = EncoderLM(EncoderConfig(vocab_size=tokenizer.vocab_size, context_length=8, n_embd=16, n_head=2,
                                    n_layer=1, d_ff=32))
    save_model(model, tmp_path)
    tokenizer.save(tmp_path / "tokenizer.json")
    attention = extract_attention(load_run(tmp_path), "abcabcabc")
    (maps,) = attention.maps
    assert maps.weights.shape == (1, 2, 8, 8) and not maps.causal
    above = np.triu_indices(8, 1)
    assert np.all(maps.weights[..., above[0], above[1]] > 0)  # every token sees the ones after it
    assert attention.notes  # 9 tokens cropped to the context of 8


# ------------------------------------------------------------------------------------------ heat maps


def test_png_grid_has_one_labelled_panel_per_layer_and_head(gpt_run, tmp_path):
    attention = extract_attention(load_run(gpt_run), TEXT)
    drawn = attention_figure(attention)
    assert len(drawn.panels) == 2 * 3
    assert {(p.layer, p.head) for p in drawn.panels} == {(la, he) for la in range(2) for he in range(3)}
    first = drawn.panels[0].ax
    assert [t.get_text() for t in first.get_yticklabels()] == attention.maps[0].queries
    bottom_left = next(p.ax for p in drawn.panels if (p.layer, p.head) == (1, 0))
    assert [t.get_text() for t in bottom_left.get_xticklabels()] == attention.maps[0].keys
    image = first.get_images()[0].get_array()
    assert image.mask[0, 1] and not image.mask[1, 0]  # the future is masked (drawn grey), the past is not
    assert drawn.colorbar.vmin == 0.0 and drawn.colorbar.vmax == 1.0
    width_in, height_in = drawn.figure.get_size_inches()
    out = drawn.save(tmp_path / "grid.png")
    from PIL import Image

    with Image.open(out) as png:
        assert png.format == "PNG"
        assert abs(png.size[0] - width_in * 120) <= 1 and abs(png.size[1] - height_in * 120) <= 1
    one = attention_figure(attention.select(layer=1, head=2))
    assert [(p.layer, p.head) for p in one.panels] == [(1, 2)]
    np.testing.assert_allclose(one.panels[0].ax.get_images()[0].get_array().filled(0),
                               attention.maps[0].weights[1, 2], atol=1e-6)


def test_a_hundred_tokens_keep_every_label(tmp_path):
    tokenizer = CharTokenizer.train(CORPUS)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, context_length=128, n_layer=1, n_head=1, n_embd=8))
    save_model(model, tmp_path)
    tokenizer.save(tmp_path / "tokenizer.json")
    text = (CORPUS * 3)[:100]
    drawn = attention_figure(extract_attention(load_run(tmp_path), text))
    labels = drawn.panels[0].ax.get_yticklabels()
    assert len(labels) == 100
    assert min(t.get_fontsize() for t in labels) >= 6  # legible, not shrunk to nothing


# ------------------------------------------------------------------------------------------ HTML


def unpack(part: dict) -> np.ndarray:
    raw = np.frombuffer(base64.b64decode(part["weights"]), dtype="<u2")
    return raw.reshape(part["shape"]) / 65535


def test_html_is_one_self_contained_file_holding_the_weights(gpt_run):
    attention = extract_attention(load_run(gpt_run), "romans </script> &")
    page = attention_html(attention)
    assert page.count("</script>") == 2  # the token "<" cannot end the data block early
    assert not re.search(r"(src|href)=\"(https?:)?//", page) and "cdn" not in page.lower()
    assert "@import" not in page and "fetch(" not in page
    block = re.search(r'<script type="application/json" id="attn-data">(.*?)</script>', page, re.S)
    data = json.loads(block[1])
    (part,) = data["parts"]
    assert part["queries"][7:9] == ["<", "/"] and part["causal"] is True
    np.testing.assert_allclose(unpack(part), attention.maps[0].weights, atol=0.5 / 65535 + 1e-7)


def test_pack_weights_rounds_to_sixteen_bits():
    weights = np.array([0.0, 1.0, 0.5, 1e-6, 0.25], dtype=np.float32)
    raw = np.frombuffer(base64.b64decode(pack_weights(weights)), dtype="<u2")
    assert raw.tolist() == [0, 65535, 32768, 0, 16384]


def test_too_many_weights_for_a_page_asks_for_a_selection():
    from attnlab.viz.extract import AttentionMaps

    huge = AttentionMaps("self", "x", ["a"] * 600, ["a"] * 600, np.zeros((6, 6, 600, 600), dtype=np.float32))
    with pytest.raises(AttnlabError, match="--layer and/or --head"):
        attention_html(ModelAttention("gpt", "d", "t", [huge]))


# ------------------------------------------------------------------------------------------ CLI


def test_cli_writes_png_and_html(gpt_run, tmp_path, capsys):
    argv = ["attention", str(gpt_run), "--text", TEXT, "--out", str(tmp_path / "a.png"), "--layer", "1"]
    assert run_cli(argv) == 0
    assert "3 heat maps" in capsys.readouterr().out
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run_cli(["attention", str(gpt_run), "--text", TEXT, "--out", str(tmp_path / "v.html")]) == 0
    assert "6 attention maps" in capsys.readouterr().out
    assert (tmp_path / "v.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary files left


@pytest.mark.parametrize("extra, message", [
    (["--out", "a.txt"], "end the name with .png"),
    (["--out", "a.png", "--head", "7"], "--head 7 does not exist"),
    (["--out", "a.png", "--text", "ZZZ"], "never saw in training"),
    (["--out", "a.png", "--target", "x"], "--target is for encoder-decoder"),
])
def test_cli_errors_are_one_line(gpt_run, tmp_path, capsys, extra, message):
    argv = ["attention", str(gpt_run), "--text", TEXT, *extra]
    argv = [str(tmp_path / a) if a.startswith("a.") else a for a in argv]
    assert run_cli(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def write_metrics(folder: Path, losses: list[float], val_every: int = 2) -> Path:
    folder.mkdir()
    rows = [{"step": i + 1, "loss": loss} for i, loss in enumerate(losses)]
    rows += [{"step": i + 1, "val_loss": loss + 0.1}
             for i, loss in enumerate(losses) if (i + 1) % val_every == 0]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_plot_overlays_several_runs(tmp_path, capsys):
    import matplotlib.pyplot as plt

    a = write_metrics(tmp_path / "a", [3.0, 2.5, 2.0, 1.8])
    b = write_metrics(tmp_path / "b", [3.2, 2.9, 2.7, 2.6])
    out = tmp_path / "loss.png"
    seen = []
    original = plt.Figure.savefig

    def spy(fig, *args, **kwargs):
        ax = fig.axes[0]
        seen.append([(line.get_label(), list(line.get_ydata())) for line in ax.get_lines()])
        return original(fig, *args, **kwargs)

    plt.Figure.savefig = spy
    try:
        assert run_cli(["plot", str(a), str(b), "--out", str(out), "--labels", "small,big"]) == 0
    finally:
        plt.Figure.savefig = original
    assert out.read_bytes()[:4] == b"\x89PNG"
    (lines,) = seen
    labels = dict(lines)
    assert set(labels) == {"small train", "small validation", "big train", "big validation"}
    assert labels["big validation"] == pytest.approx([3.0, 2.7])
    assert "2 runs" in capsys.readouterr().out


def test_plot_errors(tmp_path, capsys):
    a = write_metrics(tmp_path / "a", [1.0, 0.5])
    (tmp_path / "empty").mkdir()
    cases = [
        (["plot", str(a), "--out", str(tmp_path / "x.png"), "--labels", "one,two"],
         "--labels has 2 names for 1"),
        (["plot", str(tmp_path / "empty"), "--out", str(tmp_path / "x.png")], "no losses to plot"),
        (["plot", str(tmp_path / "missing"), "--out", str(tmp_path / "x.png")], "not a run folder"),
        (["plot", str(a), "--out", str(tmp_path / "x.html")], "end the name with .png"),
    ]
    for argv, message in cases:
        assert run_cli(argv) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()
