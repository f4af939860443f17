"""What the dashboard costs: UI CPU under a fast stream, and the observer effect on decode speed.

1. Fast scripted stream: three models on the Ollama-protocol test server (a separate process, so
   its CPU is not counted here) at ~2,000 tokens/s each, through the dashboard (headless Pilot,
   120x36) and through the engine alone. Reports this process's CPU per second of streaming in
   both, the difference (what the UI costs), the client decode rate in both (a UI that cannot
   keep up slows the loop that timestamps chunks) and the largest gap between two flushes (a
   growing backlog would show as growing gaps).
2. Observer effect: the embedded SmolLM2, same prompt/options/repetitions, under
   ``llmbench --batch`` (a subprocess) and inside the dashboard, alternated; ratio of the mean
   decode rates. Target >= 0.95.

Run: ``/work/venv/bin/python bench/bench_ui.py [--reps 5] [--rounds 2]``; prints Markdown.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]

from llmbench_tui.engine.runner import Engine, Plan  # noqa: E402
from llmbench_tui.schema import ModelSpec, Options, PromptSpec  # noqa: E402

PROMPT = "Explain in three sentences why the sky is blue."
SERVER = """
import sys, time
sys.path.insert(0, {tests!r})
from support.ollama_server import FakeModel, OllamaTestServer, words
tokens = words({text!r})
models = [FakeModel(f"fast{{i}}:1b", tokens=tokens, token_delay_s={delay}) for i in range(3)]
with OllamaTestServer(models, port={port}) as s:
    print(s.url, flush=True)
    time.sleep(3600)
"""


def start_server(n_tokens: int, delay: float) -> tuple[subprocess.Popen, str]:
    text = " ".join(f"tok{i}" for i in range(n_tokens))
    code = SERVER.format(tests=str(ROOT / "tests"), text=text, delay=delay, port=0)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    return proc, url


def make_app(tmp: Path, models: list[str]):
    os.environ["LLMBENCH_CONFIG_DIR"] = str(tmp / "cfg")
    from llmbench_tui.ui.app import build_app

    args = SimpleNamespace(data_dir=str(tmp / "data"), ollama_host=None, models=models,
                           theme=None, no_mouse=True, sample_interval=0.25, start="dashboard")
    app = build_app(args)
    app.hub = None
    return app


def cpu_s() -> float:
    t = os.times()
    return t.user + t.system


async def dashboard_session(tmp: Path, plan: Plan, gaps_timer: bool = True
                            ) -> tuple[list, float, float, float]:
    """Run ``plan`` in the dashboard; (records, cpu s, wall s, largest gap between flushes).

    ``gaps_timer`` adds a 12 Hz probe timer (its lateness is the loop's backlog); the observer
    measurement runs without it, as the real app does."""
    app = make_app(tmp, [m.label for m in plan.models])
    gaps: list[float] = []
    async with app.run_test(size=(120, 36)) as pilot:
        dash = app.screen
        last = [time.perf_counter()]

        def tick() -> None:  # a timer at the flush rate: its lateness is the loop's backlog
            now = time.perf_counter()
            gaps.append(now - last[0])
            last[0] = now

        if gaps_timer:
            dash.set_interval(1 / 12, tick)
        await pilot.pause(0.5)
        gaps.clear()
        c0, w0 = cpu_s(), time.perf_counter()
        dash.start(plan)
        # Plain sleeps, not pilot.pause(): each pause posts a callback to every widget and waits
        # for the screen, a load of its own that the dashboard does not have in real use.
        while dash.last_finished is None:
            await asyncio.sleep(0.1)
        c1, w1 = cpu_s(), time.perf_counter()
        records = dash.last_finished.records
    return records, c1 - c0, w1 - w0, max(gaps[1:] or [0.0])


async def engine_session(plan: Plan) -> tuple[list, float, float]:
    c0, w0 = cpu_s(), time.perf_counter()
    finished = await Engine(plan).run()
    return finished.records, cpu_s() - c0, time.perf_counter() - w0


def rates(records) -> list[float]:
    return [r.timings.decode_tok_s for r in records
            if r.status == "ok" and not r.warmup and r.timings.decode_tok_s]


def fast_stream(tmp: Path, concurrency: int) -> dict:
    n_tokens, delay = 4000, 0.0005
    proc, url = start_server(n_tokens, delay)
    try:
        models = [ModelSpec.parse(f"ollama:fast{i}:1b@{url}") for i in range(3)]
        plan = Plan(models=models, prompts=[PromptSpec(id="prompt", text=PROMPT)],
                    options=Options(max_tokens=n_tokens), repetitions=1, warmup=0,
                    concurrency=concurrency)
        recs_e, cpu_e, wall_e = asyncio.run(engine_session(plan))
        recs_d, cpu_d, wall_d, gap = asyncio.run(dashboard_session(tmp, plan))
    finally:
        proc.terminate()
        proc.wait()
    return {
        "concurrency": concurrency,
        "engine_rate": statistics.mean(rates(recs_e)),
        "dash_rate": statistics.mean(rates(recs_d)),
        "engine_cpu": cpu_e / wall_e, "dash_cpu": cpu_d / wall_d,
        "tokens": sum(r.tokens.output or 0 for r in recs_d), "wall": wall_d, "max_gap": gap,
    }


def batch_run(tmp: Path, reps: int, max_tokens: int) -> list[float]:
    out = tmp / f"batch-{time.time_ns()}.json"
    cmd = [str(Path(sys.executable).with_name("llmbench")), "--batch", "-m", "embedded",
           "-p", PROMPT, "-n", str(reps), "--warmup", "1", "--max-tokens", str(max_tokens),
           "--temperature", "0", "--seed", "1", "--no-store", "--json", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)
    return rates_from_json(json.loads(out.read_text()))


def rates_from_json(records: list[dict]) -> list[float]:
    return [r["timings"]["decode_tok_s"] for r in records
            if r["status"] == "ok" and not r["warmup"] and r["timings"]["decode_tok_s"]]


def dashboard_embedded(tmp: Path, reps: int, max_tokens: int) -> list[float]:
    plan = Plan(models=[ModelSpec.parse("embedded")],
                prompts=[PromptSpec(id="prompt", text=PROMPT)],
                options=Options(max_tokens=max_tokens, temperature=0, seed=1),
                repetitions=reps, warmup=1)
    records, _, _, _ = asyncio.run(dashboard_session(tmp, plan, gaps_timer=False))
    return rates(records)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=128)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print("## Fast scripted stream (3 models, ~2,000 tok/s each, 4,000 tokens per run)\n")
        print("| streams | tokens | engine-only tok/s | dashboard tok/s | engine-only CPU "
              "| dashboard CPU | UI cost | max flush gap |")
        print("|---|---|---|---|---|---|---|---|")
        for conc in (1, 3):
            r = fast_stream(tmp, conc)
            print(f"| {conc} | {r['tokens']} | {r['engine_rate']:.0f} | {r['dash_rate']:.0f} | "
                  f"{r['engine_cpu']:.0%} | {r['dash_cpu']:.0%} | "
                  f"{r['dash_cpu'] - r['engine_cpu']:+.0%} | {r['max_gap'] * 1000:.0f} ms |")
        print(f"\n## Observer effect (embedded SmolLM2, {args.reps} reps + 1 warm-up, "
              f"max_tokens {args.max_tokens}, temperature 0, seed 1)\n")
        batch, dash = [], []
        for _ in range(args.rounds):
            batch += batch_run(tmp, args.reps, args.max_tokens)
            dash += dashboard_embedded(tmp, args.reps, args.max_tokens)
        mb, md = statistics.mean(batch), statistics.mean(dash)
        print("| face | n | decode tok/s mean ± stdev |")
        print("|---|---|---|")
        print(f"| --batch | {len(batch)} | {mb:.1f} ± {statistics.stdev(batch):.1f} |")
        print(f"| dashboard | {len(dash)} | {md:.1f} ± {statistics.stdev(dash):.1f} |")
        print(f"\nratio dashboard / batch = **{md / mb:.3f}** (target >= 0.95)")


if __name__ == "__main__":
    main()
