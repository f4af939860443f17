"""The harness's own cost, measured against what it measures.

1. Harness cost per token: the same fast scripted Ollama stream (the Ollama-protocol test server
   in a separate process, no delays) consumed by (a) a bare ``ollama.AsyncClient`` loop and
   (b) the full engine (typed chunks, timing, events, record building). Reported as client CPU
   microseconds per token for each and their ratio, measured in one run, alternating.
2. Embedded decode rate as the engine measures it (client, from chunk arrival instants) against
   llama.cpp's own perf counters for the same runs (server figure): their ratio is the cost of
   getting each token out of llama.cpp and into the engine.

Run:  python bench/bench_engine.py [--tokens 2000] [--rounds 5] [--embedded-runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import ollama

from llmbench_tui.engine.runner import Engine, Plan
from llmbench_tui.schema import ModelSpec, Options, PromptSpec

ROOT = Path(__file__).resolve().parent.parent
MODEL = "smollm-fake:135m"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tokens: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "support" / "ollama_server.py"), "--port", str(port),
         "--token-delay", "0", "--tokens", str(tokens), "--no-delays"],
        stdout=subprocess.PIPE, text=True,
    )
    proc.stdout.readline()  # "Ollama test server on ..."
    return proc, f"http://127.0.0.1:{port}"


async def bare(host: str) -> tuple[int, float, float]:
    client = ollama.AsyncClient(host=host)
    n = 0
    c0, w0 = time.process_time(), time.perf_counter()
    async for part in await client.chat(MODEL, [{"role": "user", "content": "hi"}], stream=True,
                                        think=False):
        if part.message.content:
            n += 1
    c1, w1 = time.process_time(), time.perf_counter()
    return n, c1 - c0, w1 - w0


async def engine(host: str) -> tuple[int, float, float]:
    plan = Plan(models=[ModelSpec.parse(f"ollama:{MODEL}@{host}")],
                prompts=[PromptSpec(id="p", text="hi")], repetitions=1, warmup=0,
                options=Options(think=False))
    c0, w0 = time.process_time(), time.perf_counter()
    fin = await Engine(plan).run()
    c1, w1 = time.process_time(), time.perf_counter()
    rec = fin.records[0]
    assert rec.status == "ok", rec.error
    return rec.timings.chunks, c1 - c0, w1 - w0


def harness_cost(tokens: int, rounds: int) -> None:
    proc, host = start_server(tokens)
    try:
        asyncio.run(bare(host))  # warm both paths (imports, connection set-up)
        asyncio.run(engine(host))
        bare_us, eng_us = [], []
        for _ in range(rounds):
            n, cpu, _ = asyncio.run(bare(host))
            bare_us.append(cpu / n * 1e6)
            n, cpu, _ = asyncio.run(engine(host))
            eng_us.append(cpu / n * 1e6)
    finally:
        proc.terminate()
        proc.wait()
    b, e = statistics.median(bare_us), statistics.median(eng_us)
    print(f"harness cost, {tokens}-token stream, {rounds} rounds (median client CPU per token):")
    print(f"  bare ollama.AsyncClient loop: {b:7.1f} µs/token")
    print(f"  llmbench engine:              {e:7.1f} µs/token")
    print(f"  ratio engine/bare:            {e / b:7.2f}   (overhead {e - b:+.1f} µs/token)")


def embedded(runs: int, max_tokens: int) -> None:
    plan = Plan(models=[ModelSpec.parse("embedded")], prompts=[PromptSpec(
        id="sky", text="Explain in three sentences why the sky is blue.")],
        repetitions=runs, warmup=1, options=Options(temperature=0.0, seed=1,
                                                    max_tokens=max_tokens))
    fin = asyncio.run(Engine(plan).run())
    ratios = []
    print(f"embedded SmolLM2, {runs} runs of up to {max_tokens} tokens:")
    for r in fin.records:
        if r.warmup or r.status != "ok":
            continue
        c, s = r.timings.decode_tok_s, r.server.decode_tok_s
        ratios.append(c / s)
        print(f"  tokens {r.tokens.output:4d}  client {c:7.1f} tok/s  llama.cpp {s:7.1f} tok/s"
              f"  ratio {c / s:.3f}")
    print(f"  median ratio client/llama.cpp: {statistics.median(ratios):.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--embedded-runs", type=int, default=5)
    p.add_argument("--max-tokens", type=int, default=128)
    args = p.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, {sys.platform}, Python {sys.version.split()[0]}")
    harness_cost(args.tokens, args.rounds)
    if args.embedded_runs:
        embedded(args.embedded_runs, args.max_tokens)


if __name__ == "__main__":
    main()
