"""``attnlab serve``: the OpenAI-compatible API through the official ``openai`` client, bad input as
4xx JSON with the server staying up, runs deleted while serving, a lock per model, the studio's JSON.

One tiny GPT run is trained per module; the server runs in a background thread on a free port of
127.0.0.1 and is stopped at the end.
"""

from __future__ import annotations

import json
import shutil
import threading
import urllib.error
import urllib.request

import pytest

import attnlab

openai = pytest.importorskip("openai", reason="the openai client is a test dependency")
pytest.importorskip("fastapi", reason="attnlab serve needs fastapi")

from attnlab.serve import BackgroundServer  # noqa: E402

TINY = dict(preset="gpt-nano", steps=6, batch_size=4, quiet=True, no_sample=True,
            set={"context_length": 32, "eval_every": 3, "eval_iters": 1})


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    corpus = folder / "corpus.txt"
    corpus.write_text("friends romans countrymen lend me your ears\n\n" * 60, encoding="utf-8")
    attnlab.train("gpt", data=str(corpus), out=str(folder / "runs" / "tiny"), **TINY)
    shutil.copytree(folder / "runs" / "tiny", folder / "runs" / "doomed")
    return folder / "runs"


@pytest.fixture(scope="module")
def server(runs_dir):
    with BackgroundServer([runs_dir]) as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server}/v1", api_key="not-needed", max_retries=0, timeout=60)


def call(url: str, body: bytes | None = None, method: str | None = None) -> tuple[int, dict]:
    """(status, JSON body) of a raw request, errors included."""
    request = urllib.request.Request(url, data=body, method=method or ("POST" if body is not None else "GET"),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_health_and_models(server, client):
    assert call(f"{server}/health") == (200, {"status": "ok", "version": attnlab.__version__})
    ids = [m.id for m in client.models.list().data]
    assert ids[0] == "eliza" and {"tiny", "doomed"} <= set(ids)


def test_chat_completion_whole_and_streamed(client):
    messages = [{"role": "user", "content": "friends romans"}]
    whole = client.chat.completions.create(model="tiny", messages=messages, max_tokens=20, seed=1, temperature=0.8)
    assert whole.object == "chat.completion" and whole.choices[0].message.role == "assistant"
    assert isinstance(whole.choices[0].message.content, str)
    assert whole.choices[0].finish_reason in ("stop", "length") and whole.usage.prompt_tokens > 0
    stream = client.chat.completions.create(model="tiny", messages=messages, max_tokens=20, seed=1, temperature=0.8,
                                            stream=True)
    pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == whole.choices[0].message.content  # the same seed: the same text, streamed or not
    assert "\n\n" not in whole.choices[0].message.content  # a reply ends at a blank line


def test_completion_and_seed(client):
    first = client.completions.create(model="tiny", prompt="friends", max_tokens=25, seed=7)
    again = client.completions.create(model="tiny", prompt="friends", max_tokens=25, seed=7)
    assert first.object == "text_completion" and first.choices[0].text == again.choices[0].text
    assert first.choices[0].finish_reason == "length" and first.usage.completion_tokens == 25
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="tiny", prompt="friends", max_tokens=25, seed=7, stream=True))
    assert streamed == first.choices[0].text
    stopped = client.completions.create(model="tiny", prompt="friends", max_tokens=25, seed=7, stop=["e"])
    assert "e" not in stopped.choices[0].text and first.choices[0].text.startswith(stopped.choices[0].text)
    assert client.completions.create(model="tiny", prompt="friends", max_tokens=5, temperature=0).choices[0].text


def test_eliza_answers_through_the_api(client):
    messages = [{"role": "user", "content": "I remember my first bicycle"}]
    reply = client.chat.completions.create(model="eliza", messages=messages)
    assert reply.choices[0].message.content == attnlab.eliza.Eliza().reply("I remember my first bicycle")
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="eliza", messages=messages, stream=True))
    assert streamed == reply.choices[0].message.content


BAD = [
    (b"not json", 400, "invalid_json"),
    (b"[1, 2]", 400, "invalid_json"),
    (json.dumps({"model": "tiny"}).encode(), 400, "invalid_type"),
    (json.dumps({"model": "tiny", "messages": []}).encode(), 400, "invalid_type"),
    (json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "x"}] * 201}).encode(), 400, "too_long"),
    (json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "x" * 20_001}]}).encode(), 400,
     "too_long"),
    (json.dumps({"model": "tiny", "messages": [{"role": "wizard", "content": "x"}]}).encode(), 400, "invalid_type"),
    (json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": 10**9}).encode(),
     400, "out_of_range"),
    (json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "temperature": -1}).encode(),
     400, "out_of_range"),
    (json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "top_p": 0}).encode(),
     400, "out_of_range"),
    (json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "seed": "abc"}).encode(),
     400, "invalid_type"),
    (json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}).encode(),
     400, "invalid_type"),
    (json.dumps({"model": "nobody", "messages": [{"role": "user", "content": "x"}]}).encode(), 404,
     "model_not_found"),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD)
def test_bad_chat_requests_get_a_json_error_and_the_server_stays_up(server, body, status, code):
    got, answer = call(f"{server}/v1/chat/completions", body)
    assert (got, answer["error"]["code"]) == (status, code)
    assert answer["error"]["message"] and answer["error"]["type"]
    assert call(f"{server}/health")[0] == 200


def test_bad_completions_and_unknown_paths(server, client):
    status, answer = call(f"{server}/v1/completions", json.dumps({"model": "tiny", "prompt": "x" * 20_001}).encode())
    assert status == 400 and answer["error"]["code"] == "too_long"
    status, answer = call(f"{server}/v1/completions", json.dumps({"model": "tiny", "prompt": "\u00a7\u00a7"}).encode())
    assert status == 400 and "error" in answer  # characters the model never saw
    status, answer = call(f"{server}/v1/completions", json.dumps({"model": "eliza", "prompt": "hi"}).encode())
    assert status == 400 and answer["error"]["code"] == "model_not_supported"
    status, answer = call(f"{server}/v1/nothing-here")
    assert status == 404 and answer["error"]["type"] == "not_found_error"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nobody", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="tiny", prompt="hi", max_tokens=-1)


def test_a_run_deleted_or_damaged_while_serving(server, client, runs_dir):
    assert client.completions.create(model="doomed", prompt="friends", max_tokens=3).choices[0].text is not None
    (runs_dir / "doomed" / "model.safetensors").write_bytes(b"garbage")
    status, answer = call(f"{server}/v1/completions", json.dumps({"model": "doomed", "prompt": "hi"}).encode())
    assert status == 500 and answer["error"]["code"] == "run_unreadable"
    shutil.rmtree(runs_dir / "doomed")
    status, answer = call(f"{server}/v1/completions", json.dumps({"model": "doomed", "prompt": "hi"}).encode())
    assert status == 404 and answer["error"]["code"] == "model_not_found"
    assert client.completions.create(model="tiny", prompt="friends", max_tokens=3).choices[0].text is not None


def test_concurrent_requests_to_one_model_queue_and_match_their_seeds(client):
    expected = {seed: client.completions.create(model="tiny", prompt="romans", max_tokens=30, seed=seed)
                .choices[0].text for seed in range(4)}
    got: dict[int, str] = {}

    def ask(seed: int) -> None:
        stream = client.completions.create(model="tiny", prompt="romans", max_tokens=30, seed=seed, stream=True)
        got[seed] = "".join(c.choices[0].text for c in stream)

    threads = [threading.Thread(target=ask, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert got == expected  # no two generations interleaved in one cache


def test_a_client_that_leaves_mid_stream_stops_the_generation(server, client):
    stream = client.completions.create(model="tiny", prompt="friends", max_tokens=2_000, stream=True)
    next(iter(stream))
    stream.close()
    reply = client.completions.create(model="tiny", prompt="friends", max_tokens=3, seed=1)  # not stuck behind it
    assert reply.choices[0].finish_reason == "length"


def test_studio_json(server):
    status, answer = call(f"{server}/api/runs")
    tiny = next(r for r in answer["runs"] if r["name"] == "tiny")
    assert tiny["kind"] == "gpt" and tiny["steps"] == 6 and tiny["parameters"] > 0
    assert {"generate", "attention"} <= set(tiny["capabilities"])
    status, answer = call(f"{server}/api/metrics?run=tiny")
    assert status == 200 and [r["step"] for r in answer["rows"] if "val_loss" in r] == [3, 6]
    status, answer = call(f"{server}/api/next", json.dumps({"model": "tiny", "text": "friends"}).encode())
    assert status == 200 and answer["tokens"] == list("friends") and len(answer["next"]) == answer["vocab_size"]
    request = urllib.request.Request(f"{server}/api/viewer?run=tiny&text=friends")
    with urllib.request.urlopen(request, timeout=60) as response:
        assert "attn-data" in response.read().decode() and "script-src" in response.headers["Content-Security-Policy"]
    with urllib.request.urlopen(f"{server}/chat", timeout=60) as response:
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_the_command_refuses_a_missing_folder_and_a_bad_port(tmp_path):
    import subprocess
    import sys

    for argv, message in ((["serve", str(tmp_path / "nowhere")], "no such folder"),
                          (["serve", str(tmp_path), "--port", "70000"], "--port must be from 0 to 65535")):
        done = subprocess.run([sys.executable, "-m", "attnlab", *argv], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and done.stderr.startswith("attnlab: error: ") and message in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_a_translation_run_translates_and_shows_its_alignment(tmp_path):
    attnlab.train("bahdanau", task="copy", n_pairs=200, preset="tiny", steps=4, batch_size=8,
                  out=str(tmp_path / "copy"), quiet=True, no_sample=True, set={"eval_every": 4, "eval_iters": 1})
    with BackgroundServer([tmp_path / "copy"]) as url:
        status, answer = call(f"{url}/api/runs")
        assert answer["runs"][0]["capabilities"] == ["translate", "attention"]
        status, answer = call(f"{url}/api/translate", json.dumps({"model": "copy", "text": "abc"}).encode())
        assert status == 200 and isinstance(answer["translation"], str)
        with urllib.request.urlopen(f"{url}/api/viewer?run=copy&text=abc", timeout=60) as response:
            assert "alignment" in response.read().decode()
        status, answer = call(f"{url}/v1/completions", json.dumps({"model": "copy", "prompt": "abc"}).encode())
        assert status == 400 and answer["error"]["code"] == "model_not_supported"
        assert [m["id"] for m in call(f"{url}/v1/models")[1]["data"]] == ["eliza"]  # it does not generate text


def test_the_command_prints_its_address_and_stops_on_ctrl_c(runs_dir):
    import re
    import signal
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "attnlab", "serve", str(runs_dir), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", line).group(0)
        assert call(f"{url}/health")[0] == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
