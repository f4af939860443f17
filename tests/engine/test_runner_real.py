"""The engine over the two real inference paths: llama.cpp in-process (the embedded SmolLM2) and
a real ``python -m llama_cpp.server`` speaking the OpenAI protocol. Same prompt, greedy, so the
two must agree on the words while each path keeps its own figures."""

from __future__ import annotations

import pytest

from llmbench_tui.engine.runner import Engine, Plan
from llmbench_tui.schema import ModelSpec, Options, PromptSpec

pytestmark = pytest.mark.slow

PROMPT = [PromptSpec(id="sky", text="Why is the sky blue? One sentence.")]
GREEDY = Options(temperature=0.0, seed=1, max_tokens=16)


async def test_openai_server_and_embedded_through_the_engine(llama_server, monkeypatch):
    monkeypatch.setenv("LLMBENCH_GGUF_THREADS", "1")
    plan = Plan(models=[ModelSpec.parse("embedded"),
                        ModelSpec.parse(f"openai:smollm@{llama_server}")],
                prompts=PROMPT, options=GREEDY, repetitions=2, warmup=1,
                ttft_timeout_s=120, stall_timeout_s=60)
    fin = await Engine(plan).run()
    assert [r.status for r in fin.records] == ["ok"] * 6, [r.error for r in fin.records]
    embedded = [r for r in fin.records if r.backend == "gguf" and not r.warmup]
    served = [r for r in fin.records if r.backend == "openai" and not r.warmup]
    for rec in embedded:
        # In-process: llama.cpp's own count and perf counters, one token per chunk.
        assert rec.tokens.source == "server" and rec.tokens.output == 16
        assert rec.timings.itl_unit == "token"
        assert rec.server.decode_tok_s > 0 and rec.server.eval_count >= 15
        assert rec.timings.decode_tok_s == pytest.approx(
            (rec.tokens.output - 1) / (rec.timings.e2e_s - rec.timings.ttft_s), rel=0.05)
    for rec in served:
        assert rec.host.startswith(llama_server.rstrip("/").removesuffix("/v1"))
        assert rec.timings.ttft_s > 0 and rec.tokens.output >= 2
        assert rec.response.strip()
    # Greedy decoding of the same model file: the same words on both paths.
    assert embedded[0].response.split()[:5] == served[0].response.split()[:5]
    assert len(fin.groups) == 2


async def test_cold_run_on_a_server_that_cannot_unload_is_not_run_warm(llama_server):
    """OpenAI-compatible servers have no unload: the cold run is stored as an error saying so,
    never as a warm run marked cold."""
    plan = Plan(models=[ModelSpec.parse(f"openai:smollm@{llama_server}")], prompts=PROMPT,
                options=GREEDY, repetitions=1, warmup=0, cold=1, ttft_timeout_s=120)
    fin = await Engine(plan).run()
    cold, warm = fin.records
    assert cold.cold and cold.status == "error" and "unload" in cold.error
    assert cold.response == "" and cold.timings.ttft_s is None
    assert not warm.cold and warm.status == "ok"
