"""``--api chat`` size grids (issue 22, item 4): the user message is sized as a raw prompt is,
sent through the chat endpoint (the model's chat template and the system prompt around it), and
the record stores the prompt tokens the server counted after templating.

Against the Ollama protocol test server (whose chat template adds ``TEMPLATE_TOKENS`` per
message, by its documented counting rule), llama-cpp-python's OpenAI-compatible server,
llama.cpp's own ``llama-server`` (built from the vendored sources on first use) and the
in-process engine with SmolLM2's own chat template.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support.fixtures_llama import BUILDS_LLAMA_SERVER
from support.ollama_server import TEMPLATE_TOKENS, count_tokens

from llmbench_tui.schema import ModelSpec, Options
from llmbench_tui.suite import SuiteError, load_suite

SYSTEM = "Answer in one short line."


def _batch(model: str, tmp_path: Path, *flags: str, ok: bool = True):
    env = {**os.environ, "LLMBENCH_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    out = tmp_path / "runs.json"
    done = subprocess.run(
        [sys.executable, "-m", "llmbench_tui.cli", "--batch", "-m", model, "--warmup", "0",
         "--json", str(out), *flags],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    if not ok:
        return done, []
    assert done.returncode == 0, done.stderr
    return done, json.loads(out.read_text())


def test_chat_grid_against_the_ollama_test_server(ollama_server, tmp_path):
    model = f"ollama:smollm-fake:135m@{ollama_server.url}"
    done, records = _batch(model, tmp_path, "--pp", "32", "--tg", "8", "-c", "1,2", "-n", "2",
                           "--api", "chat", "--system", SYSTEM)  # fmt: skip
    assert len(records) == 2 * (1 + 2)
    sent = [r for r in ollama_server.requests if r.path == "/api/chat"]
    assert len(sent) == len(records)  # every measured run went through the chat endpoint
    for request in sent:
        messages = request.body["messages"]
        assert [m["role"] for m in messages] == ["system", "user"]
        assert messages[0]["content"] == SYSTEM
        assert count_tokens(messages[1]["content"]) == 32  # the user part, sized as today
    for record in records:
        w = record["workload"]
        assert w["api"] == "chat" and w["pp"] == 32 and w["prompt_tokens_fitted"] == 32
        # The server's count after templating: both messages and the template around each.
        templated = 32 + count_tokens(SYSTEM) + 2 * TEMPLATE_TOKENS
        assert w["prompt_tokens_reported"] == templated == record["tokens"]["prompt"]
        assert w["exact_prompt"] is True
        assert not any("tokens were requested" in f for f in w["flags"]), w["flags"]
        assert record["options"]["prompt_format"].startswith("chat, the model's chat template")
        assert "chat request's user message" in record["prompt"]
    assert f"--api chat: pp is the user message's tokens; the server counted the whole prompt " \
        f"with its chat template (workload.prompt_tokens_reported): pp32: {templated} tokens" \
        in done.stdout  # fmt: skip


def test_completions_stay_the_default(ollama_server, tmp_path):
    model = f"ollama:smollm-fake:135m@{ollama_server.url}"
    done, records = _batch(model, tmp_path, "--pp", "32", "--tg", "8", "-n", "1")
    (record,) = records
    assert record["workload"]["api"] == "completions"
    assert record["workload"]["prompt_tokens_reported"] == 32
    assert not any(r.path == "/api/chat" for r in ollama_server.requests)
    assert "--api chat" not in done.stdout


@pytest.mark.parametrize(("flags", "sentence"), [
    (["--depth", "64"], "--api chat sends one user message: leave out --depth"),
    (["--prefix-cache"], "--api chat: --prefix-cache is for raw completions only"),
])  # fmt: skip
def test_chat_grid_refusals_are_one_sentence(ollama_server, tmp_path, flags, sentence):
    model = f"ollama:smollm-fake:135m@{ollama_server.url}"
    done, _ = _batch(model, tmp_path, "--pp", "32", "--tg", "8", "--api", "chat", *flags, ok=False)
    assert done.returncode == 2 and done.stderr.strip() == f"llmbench: {sentence}"


def test_a_suite_grid_can_be_chat(tmp_path):
    path = tmp_path / "chat.toml"
    path.write_text('models = ["embedded"]\n[workload]\npp = [32]\ntg = [8]\napi = "chat"\n')
    from llmbench_tui.engine.runner import Plan

    plan = Plan.from_suite(load_suite(path))
    assert plan.workload is not None and plan.workload.api == "chat"
    assert plan.workload.describe()["api"] == "chat"
    path.write_text('models = ["embedded"]\n[workload]\npp = [32]\napi = "messages"\n')
    with pytest.raises(SuiteError, match="api"):
        load_suite(path)


@pytest.mark.slow
def test_chat_grid_against_llama_cpp_server(llama_server, tmp_path):
    model = f"openai:smollm@{llama_server}"
    _, chat = _batch(model, tmp_path, "--pp", "32", "--tg", "8", "-n", "2", "--api", "chat")
    _, raw = _batch(model, tmp_path, "--pp", "32", "--tg", "8", "-n", "1")
    for record in chat:
        w = record["workload"]
        assert w["api"] == "chat" and w["count_method"] == "tokenizer"
        assert w["prompt_tokens_fitted"] == 32 and w["exact_prompt"] is True
        # SmolLM2's template (a default system turn, role markers) around the user message.
        assert w["prompt_tokens_reported"] > 32 + 4, w
        assert record["tokens"]["output"] == 8  # ignore_eos/min_tokens sent on the chat route
    # The same size as a raw completion: 32 tokens, no template (this server streams no usage
    # for completions: the count there is the tokenizer's, as the record's flag says).
    w = raw[0]["workload"]
    assert w["api"] == "completions" and w["prompt_tokens_fitted"] == 32
    assert (w["prompt_tokens_reported"] or 32) == 32


def _tokens(base_url: str, text: str) -> int:
    reply = httpx.post(f"{base_url}/tokenize", json={"content": text, "parse_special": True})
    return len(reply.json()["tokens"])


def _template_tokens(base_url: str) -> int:
    """What llama-server's chat template adds around one user message: its tokenizer's count of
    the templated text (``/apply-template``) less its count of the message alone — checked
    against the server's own count of a chat request's prompt."""
    messages = [{"role": "user", "content": "Count from one to twenty."}]
    templated = httpx.post(f"{base_url}/apply-template", json={"messages": messages}).json()
    reply = httpx.post(f"{base_url}/v1/chat/completions", timeout=120, json={
        "messages": messages, "max_tokens": 1}).json()  # fmt: skip
    assert reply["usage"]["prompt_tokens"] == _tokens(base_url, templated["prompt"])
    return _tokens(base_url, templated["prompt"]) - _tokens(base_url, messages[0]["content"])


@pytest.mark.slow
@BUILDS_LLAMA_SERVER
def test_chat_grid_against_llama_cpp_own_server(llama_cpp_server, tmp_path):
    """llama.cpp's ``llama-server``: the stored count is the server's, template included."""
    model = f"openai:smollm@{llama_cpp_server}"
    _, chat = _batch(model, tmp_path, "--pp", "32", "--tg", "8", "-n", "2", "--api", "chat")
    template = _template_tokens(llama_cpp_server)
    assert template > 4, template  # SmolLM2's default system turn and role markers
    assert len(chat) == 2
    for record in chat:
        w = record["workload"]
        assert w["api"] == "chat" and w["pp"] == 32 and w["prompt_tokens_fitted"] == 32
        assert w["exact_prompt"] is True
        assert w["prompt_tokens_reported"] == 32 + template == record["tokens"]["prompt"], w
        assert record["tokens"]["output"] == 8


@pytest.mark.slow
async def test_chat_grid_in_process(tmp_path):
    """The embedded engine renders the user message with the GGUF's own chat template."""
    from llmbench_tui.engine.runner import Engine, Plan
    from llmbench_tui.engine.workload import build_workload, fit_to_models

    workload, _ = build_workload(None, pp="32", tg="8", api="chat")
    plan = Plan(models=[ModelSpec.parse("embedded")], prompts=[], repetitions=1, warmup=0,
                options=Options(temperature=0.0, seed=1), workload=workload)  # fmt: skip
    fit_to_models(plan, {"embedded": 8192})
    fin = await Engine(plan).run()
    (record,) = fin.records
    assert record.status == "ok", record.error
    w = record.model_extra["workload"]
    assert w["api"] == "chat" and w["prompt_tokens_fitted"] == 32
    assert w["prompt_tokens_reported"] > 32 + 4, w
