"""The engine end to end against the Ollama-protocol test server: scripted delays check the
README's metric formulas through the real HTTP path, and every fault becomes a stored run with
the right status and a sentence a person can act on."""

from __future__ import annotations

import asyncio

import pytest
from support.ollama_server import FakeModel

from llmbench_tui.engine.events import ChunkReceived, RunFinished, RunStarted, SessionFinished
from llmbench_tui.engine.runner import Engine, Plan
from llmbench_tui.schema import ModelSpec, Options, PromptSpec

PROMPT = [PromptSpec(id="p", text="Why is the sky blue?")]


def plan_for(*specs, **kw):
    kw.setdefault("repetitions", 1)
    kw.setdefault("warmup", 0)
    kw.setdefault("ttft_timeout_s", 10)
    kw.setdefault("stall_timeout_s", 10)
    return Plan(models=[ModelSpec.parse(s) for s in specs], prompts=PROMPT, **kw)


def spec(server, name):
    return f"ollama:{name}@{server.url}"


async def test_scripted_timing_matches_metrics(ollama_server):
    # Empty role-only first chunk at once, first text after ~0.3 s, then 20 tokens 50 ms apart.
    ollama_server.add_model(FakeModel(
        "timed:1b", tokens=[f" t{i}" for i in range(20)], empty_first_chunk=True,
        prompt_delay_s=0.3, token_delay_s=0.05, delays=[0.0],
    ))
    fin = await Engine(plan_for(spec(ollama_server, "timed:1b"))).run()
    rec = fin.records[0]
    assert rec.status == "ok", rec.error
    t = rec.timings
    # TTFT counts the first *text-bearing* chunk: an empty first chunk would make it ~0.
    assert 0.28 <= t.ttft_s <= 0.6
    assert rec.tokens.output == 20 and rec.tokens.source == "server"
    # 19 gaps of 50 ms -> 20 tok/s; a formula dividing 20 tokens by e2e would give < 15.
    assert t.decode_tok_s == pytest.approx(20.0, rel=0.15)
    assert t.tpot_s == pytest.approx(0.05, rel=0.15)
    assert t.itl_p50_s == pytest.approx(0.05, rel=0.3)
    assert t.chunks == 20 and t.itl_unit == "chunk"
    # Server figures kept apart, and close to the client's on loopback.
    assert rec.server.decode_tok_s == pytest.approx(t.decode_tok_s, rel=0.15)
    assert rec.response == "".join(f" t{i}" for i in range(20))


async def test_events_in_order_and_warmup_flagged(ollama_server):
    events = []
    fin = await Engine(plan_for(spec(ollama_server, "smollm-fake:135m"), repetitions=2, warmup=1),
                       on_event=events.append).run()
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "SessionStarted" and kinds[-1] == "SessionFinished"
    assert kinds.count("RunStarted") == kinds.count("RunFinished") == 3
    assert any(isinstance(e, ChunkReceived) for e in events)
    assert [r.warmup for r in fin.records] == [True, False, False]
    finished = [e for e in events if isinstance(e, RunFinished)]
    assert [e.index for e in finished] == [1, 2, 3]
    (group,) = fin.groups
    assert group.n_runs == 2  # the warm-up is not in the statistics
    assert isinstance(events[-1], SessionFinished) and not events[-1].cancelled


@pytest.mark.parametrize(
    ("fault", "status", "phrase", "partial"),
    [
        ("busy", "error", "busy", False),
        ("error_midstream", "error", "mid-stream", True),
        ("cut", "error", "closed mid-stream", True),
        ("garbage", "error", "not JSON", True),
        ("stall", "timeout", "stall timeout", True),
    ],
)
async def test_faults_become_runs_with_clear_messages(ollama_server, fault, status, phrase,
                                                      partial):
    ollama_server.add_model(FakeModel("faulty:1b", fault=fault, fault_after=3))
    fin = await Engine(plan_for(spec(ollama_server, "faulty:1b"), repetitions=1,
                                stall_timeout_s=0.5)).run()
    (rec,) = fin.records
    assert rec.status == status
    assert phrase in rec.error
    assert "Traceback" not in rec.error
    assert bool(rec.response) is partial


async def test_failing_model_does_not_stop_the_others(ollama_server, dead_url):
    fin = await Engine(plan_for(
        spec(ollama_server, "missing:7b"), f"ollama:x@{dead_url}",
        spec(ollama_server, "smollm-fake:135m"), repetitions=2,
    )).run()
    by_model = {}
    for r in fin.records:
        by_model.setdefault(r.model, []).append(r)
    # One stored error per failing model (its other runs skipped), all runs of the good one.
    assert [r.status for r in by_model["missing:7b"]] == ["error"]
    assert "not found" in by_model["missing:7b"][0].error
    assert "smollm-fake:135m" in by_model["missing:7b"][0].error  # says what is available
    assert [r.status for r in by_model["x"]] == ["error"]
    assert "cannot connect" in by_model["x"][0].error
    assert [r.status for r in by_model["smollm-fake:135m"]] == ["ok", "ok"]


async def test_ttft_timeout(ollama_server):
    ollama_server.add_model(FakeModel("slow:1b", prompt_delay_s=2.0))
    fin = await Engine(plan_for(spec(ollama_server, "slow:1b"), ttft_timeout_s=0.3)).run()
    (rec,) = fin.records
    assert rec.status == "timeout" and "no first token within 0.3 s" in rec.error
    assert rec.response == ""


async def test_cancel_keeps_partial_output_and_finished_runs(ollama_server):
    ollama_server.add_model(FakeModel("long:1b", tokens=[f" w{i}" for i in range(400)],
                                      token_delay_s=0.01))
    engine = None

    def on_event(e):
        if isinstance(e, ChunkReceived) and e.chunks == 20 and fin_count[0] >= 1:
            engine.cancel()
        if isinstance(e, RunFinished):
            fin_count[0] += 1

    fin_count = [0]
    engine = Engine(plan_for(spec(ollama_server, "long:1b"), repetitions=3), on_event=on_event)
    fin = await engine.run()
    assert fin.cancelled
    assert [r.status for r in fin.records] == ["ok", "cancelled"]
    cancelled = fin.records[1]
    assert cancelled.response.startswith(" w0 w1") and len(cancelled.response) < 400 * 4
    assert cancelled.timings.ttft_s is not None
    await asyncio.sleep(0.3)
    assert ollama_server.generations("long:1b")[-1].outcome == "disconnected"


async def test_concurrency_aggregate_throughput(ollama_server):
    ollama_server.add_model(FakeModel("par:1b", tokens=[f" x{i}" for i in range(30)],
                                      token_delay_s=0.02))
    fin = await Engine(plan_for(spec(ollama_server, "par:1b"), concurrency=3)).run()
    assert len(fin.records) == 3 and all(r.status == "ok" for r in fin.records)
    agg = fin.records[0].concurrent["aggregate_tok_s"]
    single = fin.records[0].timings.decode_tok_s
    assert agg == pytest.approx(3 * 30 / (30 * 0.02), rel=0.35)
    assert agg > 2 * single  # three streams really ran at once
    assert fin.groups[0].concurrency == 3


async def test_cold_run_unloads_first(ollama_server):
    ollama_server.add_model(FakeModel("coldm:1b", load_delay_s=0.4))
    fin = await Engine(plan_for(spec(ollama_server, "coldm:1b"), cold=1, repetitions=1)).run()
    cold, warm = fin.records
    assert cold.cold and not warm.cold
    assert cold.server.load_s >= 0.35
    assert cold.timings.ttft_s > warm.timings.ttft_s + 0.3
    unloads = [r for r in ollama_server.requests
               if isinstance(r.body, dict) and r.body.get("keep_alive") == 0]
    assert unloads, "the cold run did not unload the model first"


async def test_options_sent_and_stored(ollama_server):
    opts = Options(temperature=0.0, seed=7, max_tokens=5, num_ctx=2048, system="Be brief.")
    fin = await Engine(plan_for(spec(ollama_server, "smollm-fake:135m"), options=opts)).run()
    (rec,) = fin.records
    body = ollama_server.generations("smollm-fake:135m")[-1].body
    assert body["options"]["seed"] == 7 and body["options"]["num_predict"] == 5
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert rec.options["seed"] == 7 and rec.system == "Be brief."
    assert rec.tokens.output == 5


async def test_run_started_carries_ids(ollama_server):
    seen = []
    fin = await Engine(plan_for(spec(ollama_server, "smollm-fake:135m")),
                       on_event=lambda e: isinstance(e, RunStarted) and seen.append(e)).run()
    assert seen[0].run_id == fin.records[0].id and seen[0].session_id == fin.session_id


async def test_model_failing_midway_skips_the_rest_and_progress_stays_in_bounds(ollama_server):
    ollama_server.add_model(FakeModel("flaky:1b"))
    seen = []

    def on_event(e):
        seen.append(e)
        if isinstance(e, RunFinished) and e.index == 2:
            ollama_server.models.pop("flaky:1b")  # gone from the server after two runs

    fin = await Engine(plan_for(spec(ollama_server, "flaky:1b"),
                                spec(ollama_server, "smollm-fake:135m"), repetitions=4),
                       on_event=on_event).run()
    flaky = [r for r in fin.records if r.model == "flaky:1b"]
    assert [r.status for r in flaky] == ["ok", "ok", "error"]
    assert "not found" in flaky[-1].error
    finished = [e for e in seen if isinstance(e, RunFinished)]
    total = finished[0].total_runs
    assert total == 8
    assert all(e.index <= total for e in finished)
    assert finished[-1].index == total  # the other model's 4 runs end the count exactly


async def test_error_runs_share_the_group_of_the_models_good_runs(ollama_server):
    ollama_server.add_model(FakeModel("half:1b", fault="stall", fault_after=1))
    fin = await Engine(plan_for(spec(ollama_server, "half:1b"), repetitions=1,
                                stall_timeout_s=0.3)).run()
    (rec,) = fin.records
    assert rec.status == "timeout"
    assert rec.host == ollama_server.url  # the resolved host, not the spec's None
    assert fin.groups[0].n_runs == 1 and fin.groups[0].n_ok == 0


async def test_a_failing_event_consumer_never_fails_a_run(ollama_server):
    def on_event(e):
        if isinstance(e, ChunkReceived):
            raise BrokenPipeError("stdout closed")

    fin = await Engine(plan_for(spec(ollama_server, "smollm-fake:135m")),
                       on_event=on_event).run()
    assert [r.status for r in fin.records] == ["ok"]
    assert fin.records[0].tokens.output > 2
