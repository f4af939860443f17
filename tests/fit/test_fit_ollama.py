"""Fit estimates from Ollama's ``/api/show``, and pulling/deleting models headless, against the
Ollama-protocol test server (tests/ollama_server.py)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from support.ollama_server import FakeModel, OllamaTestServer, Pullable

from llmbench_tui.backends.base import BackendError, ModelNotFound
from llmbench_tui.backends.ollama_models import delete, pull
from llmbench_tui.commands import fit as fit_command
from llmbench_tui.commands import pull as pull_command

MIB = 1024 * 1024


@pytest.fixture
def server():
    with OllamaTestServer([FakeModel("smollm-fake:135m")]) as srv:
        yield srv


def tags(server: OllamaTestServer) -> list[str]:
    return [m["name"] for m in httpx.get(f"{server.url}/api/tags").json()["models"]]


def test_fit_of_an_ollama_model_from_api_show(server: OllamaTestServer, capsys) -> None:
    spec = f"ollama:smollm-fake:135m@{server.url}"
    args = fit_command.build_parser().parse_args([spec, "--ctx", "4096", "--json"])
    assert fit_command.main(args) == 0
    (model,) = json.loads(capsys.readouterr().out)["models"]
    # 30 layers × 3 KV heads × 64 (576 / 9 heads) × (K + V) × 2 bytes × 4096 tokens
    assert model["kv_bytes"] == 30 * 3 * 64 * 2 * 2 * 4096 == 90 * MIB
    assert model["weights_bytes"] == 100_000_000  # the size /api/tags gives
    assert model["source"] == "ollama"
    assert any("spread evenly" in note for note in model["notes"])


def test_fit_of_an_unknown_ollama_model_is_one_sentence(server: OllamaTestServer, capsys) -> None:
    args = fit_command.build_parser().parse_args([f"ollama:nope:1b@{server.url}"])
    assert fit_command.main(args) == 1
    err = capsys.readouterr().err
    assert "not found" in err and err.count("\n") == 1


def test_headless_pull_shows_progress_and_lists_the_model(server: OllamaTestServer, capsys) -> None:
    server.offer(Pullable(FakeModel("tiny:1b")))
    args = pull_command.build_parser().parse_args([f"ollama:tiny:1b@{server.url}"])
    assert pull_command.main(args) == 0
    out = capsys.readouterr().out.splitlines()
    percents = [float(line.split("%")[0].split()[-1]) for line in out if "%" in line]
    assert percents == sorted(percents) and percents[0] == 0.0 and percents[-1] == 100.0
    assert any("pulling " in line and "MiB" in line for line in out)
    assert out[-1].startswith("pulled tiny:1b")
    assert "tiny:1b" in tags(server)


@pytest.mark.parametrize(
    ("pullable", "message"),
    [
        (None, "found no model 'ghost:1b' to pull"),
        (Pullable(FakeModel("ghost:1b"), cut_after=3), "closed while pulling 'ghost:1b'"),
    ],
)
def test_failed_pulls_say_why_and_list_nothing(
    server: OllamaTestServer, capsys, pullable: Pullable | None, message: str
) -> None:
    if pullable is not None:
        server.offer(pullable)
    args = pull_command.build_parser().parse_args([f"ollama:ghost:1b@{server.url}"])
    assert pull_command.main(args) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert "ghost:1b" not in tags(server)


def test_pull_progress_counts_every_layer(server: OllamaTestServer) -> None:
    server.offer(Pullable(FakeModel("tiny:1b"), layers=[1000, 3000], steps=2))
    seen: list[tuple[str, int, int, float]] = []
    done = asyncio.run(
        pull(
            "tiny:1b",
            server.url,
            lambda p: seen.append((p.status, p.completed, p.total, p.fraction)),
        )
    )
    assert done.total == 4000 and done.completed == 4000
    assert seen[0][0] == "pulling manifest" and seen[-1][0] == "success"
    fractions = [f for *_, f in seen]
    assert fractions == sorted(fractions)  # never goes back when a new layer is announced


def test_delete_removes_the_model_and_a_missing_one_is_named(server: OllamaTestServer) -> None:
    asyncio.run(delete("smollm-fake:135m", server.url))
    assert tags(server) == []
    with pytest.raises(ModelNotFound, match="has no model 'smollm-fake:135m' to delete"):
        asyncio.run(delete("smollm-fake:135m", server.url))


def test_pull_from_nowhere_is_unreachable() -> None:
    with pytest.raises(BackendError, match="cannot connect"):
        asyncio.run(pull("x", "http://127.0.0.1:9", lambda p: None))


async def test_an_ollama_run_record_carries_the_prediction(server: OllamaTestServer) -> None:
    from llmbench_tui.engine.runner import Engine, Plan
    from llmbench_tui.schema import ModelSpec, Options, PromptSpec

    plan = Plan(
        models=[ModelSpec.parse(f"ollama:smollm-fake:135m@{server.url}")],
        prompts=[PromptSpec(id="p", text="Hello there.")],
        options=Options(num_ctx=2048),
        repetitions=1,
        warmup=0,
    )
    fin = await Engine(plan).run()
    (rec,) = fin.records
    assert rec.status == "ok"
    assert rec.fit["predicted"]["n_ctx"] == 2048
    assert rec.fit["predicted"]["kv_bytes"] == 30 * 3 * 64 * 2 * 2 * 2048
    assert rec.fit["estimate_source"] == "ollama"
    assert rec.to_json()["fit"] == rec.fit
