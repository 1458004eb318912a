"""The shared chat loop (attnlab.chat) and the 'attnlab chat' command."""

from __future__ import annotations

import subprocess
import sys

import pytest

from attnlab.chat import is_exit, printable, run_chat
from attnlab.eliza import Eliza
from attnlab.errors import AttnlabError

GREETING = "Hello, I am ELIZA. What would you like to talk about today?"
GOODBYE = "Goodbye. It was good to talk with you; come back whenever you need to."


def scripted(lines: list[str]):
    """An input_fn that gives these lines, then end of input; it records the prompts it was shown."""
    queue = list(lines)
    prompts: list[str] = []

    def input_fn(prompt: str) -> str:
        prompts.append(prompt)
        if not queue:
            raise EOFError
        return queue.pop(0)

    input_fn.prompts = prompts
    input_fn.left = queue
    return input_fn


class Echo:
    """A responder with nothing but reply()."""

    def reply(self, text: str) -> str:
        return text.upper()


def test_eliza_conversation_ends_on_bye_with_the_goodbye_rule_and_writes_the_transcript(tmp_path):
    shown: list[str] = []
    path = tmp_path / "talk.txt"
    read = scripted(["Hello", "", "   ", "I remember my first bicycle", "bye", "never read"])
    turns = run_chat(Eliza(), transcript=str(path), input_fn=read, output_fn=shown.append)
    assert shown == [
        f"eliza: {GREETING}",
        "eliza: Hello. What is on your mind today?",
        "eliza: How do you feel when you remember your first bicycle?",
        f"eliza: {GOODBYE}",
    ]
    assert read.left == ["never read"] and set(read.prompts) == {"you: "}
    assert turns[1] == ("you", "Hello") and turns[-1] == ("eliza", GOODBYE)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# attnlab chat with eliza, ")
    assert lines[1:] == [
        f"eliza: {GREETING}",
        "you: Hello",
        "eliza: Hello. What is on your mind today?",
        "you: I remember my first bicycle",
        "eliza: How do you feel when you remember your first bicycle?",
        "you: bye",
        f"eliza: {GOODBYE}",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["talk.txt"]  # no temporary file left behind


@pytest.mark.parametrize("word", ["quit", "EXIT", "Bye!", "goodbye"])
def test_exit_words(word):
    shown: list[str] = []
    read = scripted(["Hello", word, "never read"])
    run_chat(Eliza(), input_fn=read, output_fn=shown.append)
    assert read.left == ["never read"]
    assert shown[-1] == f"eliza: {GOODBYE}"  # the DOCTOR script's goodbye rule knows all of them
    assert is_exit(word, Eliza())
    assert is_exit(word, Echo()) == (word != "goodbye")  # 'goodbye' is ELIZA's own exit word


def test_end_of_input_ends_quietly_and_a_plain_responder_works(tmp_path):
    shown: list[str] = []
    path = tmp_path / "sub" / "echo.txt"
    turns = run_chat(
        Echo(), transcript=str(path), input_fn=scripted(["hi there", "ok"]), output_fn=shown.append
    )
    assert shown == ["bot: HI THERE", "bot: OK"]
    assert turns == [("you", "hi there"), ("bot", "HI THERE"), ("you", "ok"), ("bot", "OK")]
    assert path.read_text(encoding="utf-8").splitlines()[1:] == [
        "you: hi there",
        "bot: HI THERE",
        "you: ok",
        "bot: OK",
    ]
    shown.clear()
    run_chat(Echo(), input_fn=scripted(["quit"]), output_fn=shown.append, greeting="Welcome.", name="echo")
    assert shown == ["echo: Welcome."]  # no farewell() on Echo: nothing said at the end


def test_reset_greeting_exit_words_and_errors_from_the_responder():
    class Careful:
        greeting = "Ready."
        exit_words = ("enough",)

        def __init__(self):
            self.resets = 0

        def reset(self):
            self.resets += 1

        def reply(self, text):
            if text == "boom":
                raise AttnlabError("prompt too long")
            return "fine"

    bot, shown = Careful(), []
    run_chat(bot, input_fn=scripted(["boom", "hello", "enough", "never"]), output_fn=shown.append)
    assert bot.resets == 1
    assert shown == ["bot: Ready.", "(prompt too long)", "bot: fine"]


def test_transcript_is_written_even_when_interrupted(tmp_path):
    class Interrupting:
        def reply(self, text):
            raise KeyboardInterrupt

    path = tmp_path / "t.txt"
    with pytest.raises(KeyboardInterrupt):
        run_chat(
            Interrupting(), transcript=str(path), input_fn=scripted(["one"]), output_fn=lambda line: None
        )
    assert path.read_text(encoding="utf-8").splitlines()[1:] == ["you: one"]


def test_transcript_that_is_a_folder_is_refused_before_the_chat(tmp_path):
    with pytest.raises(AttnlabError, match="is a folder"):
        run_chat(Echo(), transcript=str(tmp_path), input_fn=scripted(["x"]), output_fn=lambda line: None)


def test_unencodable_text_does_not_break_the_transcript(tmp_path):
    path = tmp_path / "t.txt"
    run_chat(
        Echo(), transcript=str(path), input_fn=scripted(["bad \udcff byte"]), output_fn=lambda line: None
    )
    assert "you: bad ? byte" in path.read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------
# Control characters and escape sequences are shown, never sent raw
# --------------------------------------------------------------------------------------------

RAW = "\x1b[31mred\x1b[0m \x1b]0;title\x07 \x9b2J \x00\x08\x7f\r!"
SHOWN = "\\x1b[31mred\\x1b[0m \\x1b]0;title\\x07 \\x9b2J \\x00\\x08\\x7f\\x0d!"


def _is_safe(text: str) -> bool:
    """No C0 control but newline and tab, no DEL, no C1 control."""
    return not any(ord(c) < 32 and c not in "\n\t" or 0x7F <= ord(c) <= 0x9F for c in text)


def test_printable_escapes_controls_and_keeps_everything_else():
    assert printable(RAW) == SHOWN and _is_safe(printable(RAW))
    assert printable("tab\there\nnext line") == "tab\there\nnext line"
    assert printable("caf\u00e9 \u4f60\u597d \U0001f600 \u00a0") == "caf\u00e9 \u4f60\u597d \U0001f600 \u00a0"
    assert printable("bad \udcff byte") == "bad ? byte"
    assert printable(42) == "42"
    assert all(_is_safe(printable(chr(c))) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)


def test_chat_shows_and_writes_escapes_but_returns_the_text_as_typed(tmp_path):
    class Parrot:
        name = "par\x1brot"

        def reply(self, text):
            if text == "fail":
                raise AttnlabError(f"cannot use {RAW}")
            return f"you said {text}\nand more"

    shown: list[str] = []
    path = tmp_path / "t.txt"
    turns = run_chat(Parrot(), transcript=str(path), input_fn=scripted([RAW, "fail"]), output_fn=shown.append)
    assert shown == [f"par\\x1brot: you said {SHOWN}\nand more", f"(cannot use {SHOWN})"]
    assert turns[0] == ("you", RAW)  # the conversation itself is kept as typed
    written = path.read_text(encoding="utf-8")
    assert _is_safe(written) and f"you: {SHOWN}" in written


def test_cli_chat_eliza_never_echoes_raw_escapes(tmp_path):
    script = tmp_path / "loud.txt"  # a script can put escapes in its replies, too
    script.write_text("greeting: \x1b[2JHello\nkey: red\n say: \x1b[31m{1}\nnone:\n say: Hm.\n", encoding="utf-8")
    transcript = tmp_path / "t.txt"
    done = subprocess.run(
        [sys.executable, "-m", "attnlab", "chat", "eliza", "--script", str(script), "--transcript", str(transcript)],
        input=f"I see red {RAW}\n\x1b]0;pwned\x07\n".encode(),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert _is_safe(out) and _is_safe(transcript.read_text(encoding="utf-8"))
    assert out.splitlines() == [
        "eliza: \\x1b[2JHello",
        f"you: I see red {SHOWN}",
        "eliza: \\x1b[31mi see red 31mred 0m 0",  # the clause keeps words only: this escape is the script's
        "you: \\x1b]0;pwned\\x07",
        "eliza: Hm.",
    ]


def test_cli_chat_with_a_run_shows_model_text_escaped(tmp_path, monkeypatch, capsys):
    import types

    from attnlab.cli import main

    class Model:
        name = "model"

        def reply(self, text):
            return f"{text} \x1b[5mblink\x9b"

    fake = types.SimpleNamespace(load_responder=lambda path, **options: Model())
    monkeypatch.setitem(sys.modules, "attnlab.inference.chat", fake)
    monkeypatch.setattr("sys.stdin", _FakeStdin(b"hi \x1b[1m\n"))
    with pytest.raises(SystemExit) as exited:
        main(["chat", str(tmp_path)])
    assert exited.value.code == 0
    assert capsys.readouterr().out.splitlines() == ["you: hi \\x1b[1m", "model: hi \\x1b[1m \\x1b[5mblink\\x9b"]


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------


def _chat(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "attnlab", "chat", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_chat_eliza_with_piped_input_answers_and_exits_0_on_eof(tmp_path):
    transcript = tmp_path / "t.txt"
    done = _chat("eliza", "--transcript", str(transcript), stdin="Hello\nI remember my first bicycle\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"eliza: {GREETING}",
        "you: Hello",
        "eliza: Hello. What is on your mind today?",
        "you: I remember my first bicycle",
        "eliza: How do you feel when you remember your first bicycle?",
    ]
    assert "Traceback" not in done.stderr
    last_line = transcript.read_text(encoding="utf-8").splitlines()[-1]
    assert last_line == "eliza: How do you feel when you remember your first bicycle?"


def test_cli_chat_eliza_with_a_script_and_bad_bytes(tmp_path):
    script = tmp_path / "mine.txt"
    script.write_text("greeting: Speak.\nkey: cat\n say: Cats, {1}?\nnone:\n say: Hm.\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "attnlab", "chat", "eliza", "--script", str(script), "--top-k", "3"],
        input=b"my cat \xff\nnothing\nbye\n",
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0
    out = done.stdout.decode().splitlines()
    assert out[0] == "eliza: Speak." and out[2] == "eliza: Cats, my cat?" and out[4] == "eliza: Hm."
    assert out[-1] == "you: bye"  # this script has no goodbye rule: the chat just ends
    assert "ignores --top-k" in done.stderr.decode()


def test_cli_chat_errors_exit_2_without_a_traceback(tmp_path):
    broken = tmp_path / "broken.txt"
    broken.write_text("none:\n say: a\nkey: x\n match: * y *\n", encoding="utf-8")
    done = _chat("eliza", "--script", str(broken))
    assert done.returncode == 2 and "line 4" in done.stderr and "Traceback" not in done.stderr
    missing = _chat(str(tmp_path / "no-such-run"))
    assert missing.returncode == 2 and "neither 'eliza' nor an existing run folder" in missing.stderr
    script_for_run = _chat(str(tmp_path), "--script", str(broken))
    assert script_for_run.returncode == 2 and "--script is for" in script_for_run.stderr


def test_cli_chat_passes_sampling_options_to_load_responder(tmp_path, monkeypatch, capsys):
    import types

    from attnlab.cli import main

    calls = []

    def load_responder(path, **options):
        calls.append((path, options))
        return Echo()

    monkeypatch.setitem(
        sys.modules, "attnlab.inference.chat", types.SimpleNamespace(load_responder=load_responder)
    )
    monkeypatch.setattr("sys.stdin", _FakeStdin(b"hi\n"))
    with pytest.raises(SystemExit) as exited:
        main(["chat", str(tmp_path), "--temperature", "0.5", "--top-k", "7", "--seed", "3"])
    assert exited.value.code == 0
    assert calls == [(str(tmp_path), {"seed": 3, "temperature": 0.5, "top_k": 7})]
    assert capsys.readouterr().out.splitlines() == ["you: hi", "bot: HI"]
    with pytest.raises(SystemExit) as exited:
        main(["chat", str(tmp_path), "--temperature", "0"])
    assert exited.value.code == 2 and "--temperature must be above 0" in capsys.readouterr().err


class _FakeStdin:
    def __init__(self, data: bytes):
        import io

        self.buffer = io.BytesIO(data)

    def isatty(self) -> bool:
        return False
