"""Raw prompts over the OpenAI-compatible backend, against a scripted llama.cpp-like server:
its /tokenize makes prompts exact, /v1/completions gets ignore_eos/min_tokens, earlier context
is primed first, and the cached-token count the server reports is stored and flagged."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from support.fixtures_llama import free_port
from support.ollama_server import count_tokens

from llmbench_tui.engine.runner import Engine, Plan
from llmbench_tui.engine.workload import Workload, cell_prompt, make_cells
from llmbench_tui.schema import ModelSpec, Options

BOS = 1


def tokens_of(text: str) -> list[int]:
    """The fake server's tokenizer: BOS, then the test server's per-word rule as ids."""
    return [BOS] + [7] * count_tokens(text)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, cache_n: int) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.posts: list[tuple[str, dict]] = []
        self.cache_n = cache_n


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, *args) -> None:
        pass

    def reply(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.posts.append((self.path, body))
        if self.path == "/tokenize":
            self.reply({"tokens": tokens_of(body["content"])})
            return
        n_prompt = len(tokens_of(body["prompt"]))
        if not body.get("stream"):
            self.reply({"choices": [{"text": "x", "finish_reason": "length"}],
                        "usage": {"prompt_tokens": n_prompt, "completion_tokens": 1}})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        n = body["max_tokens"]
        events = [{"choices": [{"index": 0, "text": f" t{i}", "finish_reason": None}]}
                  for i in range(n)]  # fmt: skip
        events.append({
            "choices": [{"index": 0, "text": "", "finish_reason": "length"}],
            "timings": {"prompt_n": n_prompt - self.server.cache_n, "prompt_ms": 10.0,
                        "prompt_per_second": 100.0 * (n_prompt - self.server.cache_n),
                        "predicted_n": n, "predicted_ms": 20.0, "predicted_per_second": 50 * n,
                        "cache_n": self.server.cache_n},
            "usage": {"prompt_tokens": n_prompt, "completion_tokens": n},
        })  # fmt: skip
        for event in events:
            self.wfile.write(b"data: " + json.dumps(event).encode() + b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")


@pytest.fixture(params=[0, 40])
def server(request) -> Iterator[Server]:
    srv = Server(free_port(), cache_n=request.param)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


async def test_grid_over_openai_uses_tokenize_completions_and_priming(server):
    url = f"http://127.0.0.1:{server.server_address[1]}"
    workload = Workload(make_cells([50], [6], [0, 40]))
    plan = Plan(models=[ModelSpec.parse(f"openai:fake@{url}")],
                prompts=[cell_prompt(c) for c in workload.cells], repetitions=1, warmup=0,
                options=Options(num_ctx=2048), workload=workload)  # fmt: skip
    fin = await Engine(plan).run()
    assert [r.status for r in fin.records] == ["ok", "ok"], [r.error for r in fin.records]
    flat, deep = fin.records
    for rec in fin.records:
        w = rec.workload
        assert w["count_method"] == "tokenizer" and w["exact_prompt"]
        assert rec.tokens.prompt == w["pp"] + w["depth"] and rec.tokens.output == 6
        assert w["cached_tokens"] == server.cache_n
    completions = [(p, b) for p, b in server.posts if p == "/v1/completions"]
    streamed = [b for _, b in completions if b.get("stream")]
    assert all(b["ignore_eos"] is True and b["min_tokens"] == 6 == b["max_tokens"]
               and "messages" not in b for b in streamed)  # fmt: skip
    # The depth cell primed its 40-token context with a one-token completion first.
    primes = [b for _, b in completions if not b.get("stream")]
    assert len(primes) == 1 and primes[0]["max_tokens"] == 1
    assert len(tokens_of(primes[0]["prompt"])) == 40 and streamed[1]["prompt"].startswith(
        primes[0]["prompt"])  # fmt: skip
    assert deep.workload["context_prime_s"] is not None
    if server.cache_n:  # cached tokens on a cell without depth: the prefill is inflated
        assert any("inflated" in f for f in flat.workload["flags"])
        assert not any("inflated" in f for f in deep.workload["flags"])  # expected: the depth
    else:
        assert any("did not report reusing" in f for f in deep.workload["flags"])


@pytest.mark.slow
async def test_grid_against_a_real_llama_cpp_server(llama_server):
    """llama_cpp.server: /extras/tokenize fits the prompt exactly, min_tokens gets tg tokens."""
    workload = Workload(make_cells([40], [6], [0]))
    plan = Plan(models=[ModelSpec.parse(f"openai:smollm@{llama_server}")],
                prompts=[cell_prompt(c) for c in workload.cells], repetitions=1, warmup=0,
                options=Options(temperature=0.0), workload=workload)  # fmt: skip
    fin = await Engine(plan).run()
    (rec,) = fin.records
    assert rec.status == "ok", rec.error
    w = rec.workload
    assert w["count_method"] == "tokenizer" and w["prompt_tokens_fitted"] == 40
    assert w["exact_prompt"] is True
    assert rec.tokens.output == 6 and w["exact_output"] is True
