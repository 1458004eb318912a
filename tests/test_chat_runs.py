"""Chat and generate with trained runs: the note on dropped characters; translation runs are sent to translate."""

from __future__ import annotations

import io

import pytest
import torch

from attnlab.chat import run_chat
from attnlab.checkpoint import save_model
from attnlab.cli import main
from attnlab.data.tokenizers import SEQ2SEQ_SPECIALS, CharTokenizer, make_tokenizer
from attnlab.inference.chat import load_responder, unseen_characters
from attnlab.models.gpt import GPT, GPTConfig

NOTE = "(note: dropped 2 characters that this model never saw in training: 'é', '😀')"


class PipedStdin:
    def __init__(self, data: bytes):
        self.buffer = io.BytesIO(data)

    def isatty(self) -> bool:
        return False


@pytest.fixture(scope="module")
def char_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("char-run")
    tokenizer = CharTokenizer.train("hello there, general kenobi\n")
    torch.manual_seed(0)
    save_model(GPT(GPTConfig(vocab_size=tokenizer.vocab_size, context_length=32, n_layer=1, n_head=2, n_embd=16)),
               folder)
    tokenizer.save(folder / "tokenizer.json")
    return folder


def lines(*texts):
    queue = list(texts)

    def read(prompt):
        if not queue:
            raise EOFError
        return queue.pop(0)

    return read


def test_chat_says_which_characters_it_dropped_before_the_reply(char_run):
    shown: list[str] = []
    responder = load_responder(char_run, max_new_tokens=4, seed=0)
    turns = run_chat(responder, input_fn=lines("hello é there 😀é", "hello again"), output_fn=shown.append)
    assert shown[1] == NOTE
    assert shown[2].startswith(f"{responder.name}: ")
    assert [line for line in shown if line.startswith("(note:")] == [NOTE]  # the second line is all known
    assert ("you", "hello é there 😀é") in turns  # the transcript keeps what was typed


def test_unseen_characters_is_empty_for_bpe_which_encodes_anything():
    bpe = make_tokenizer("bpe", "hello there " * 20, vocab_size=260)
    assert unseen_characters(bpe, "héllo 😀") == []
    assert unseen_characters(CharTokenizer.train("abc"), "abcxa\n") == ["\n", "x"]


def test_cli_chat_with_a_char_run_prints_the_note(char_run, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", PipedStdin("hello é 😀\n".encode()))
    with pytest.raises(SystemExit) as exited:
        main(["chat", str(char_run), "--max-new-tokens", "3", "--seed", "1"])
    assert exited.value.code == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1:3] == ["you: hello é 😀", NOTE]


@pytest.fixture(scope="module")
def translation_run(tmp_path_factory):
    from attnlab.models.seq2seq import Seq2Seq, Seq2SeqConfig

    folder = tmp_path_factory.mktemp("bahdanau-run")
    src = CharTokenizer.train("abc", specials=SEQ2SEQ_SPECIALS)
    save_model(Seq2Seq(Seq2SeqConfig(src_vocab_size=src.vocab_size, tgt_vocab_size=src.vocab_size, n_embd=8,
                                     hidden_size=8, max_target_len=4)), folder)
    src.save(folder / "src_tokenizer.json")
    src.save(folder / "tgt_tokenizer.json")
    return folder


@pytest.mark.parametrize("command", [["generate", "--prompt", "abc"], ["chat"]])
def test_generate_and_chat_send_a_translation_run_to_translate(translation_run, command, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", PipedStdin(b"abc\n"))
    with pytest.raises(SystemExit) as exited:
        main([command[0], str(translation_run), *command[1:]])
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.count("attnlab: error:") == 1 and "Traceback" not in captured.err
    assert "translation run" in captured.err and f"attnlab translate {translation_run}" in captured.err
    assert captured.out == ""
