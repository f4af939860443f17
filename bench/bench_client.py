"""How much streaming one llmbench client process takes before it, not the server, sets the pace.

Against the Ollama-protocol test server (``tests/support/ollama_server.py``) started in its own
process with no delays (it answers as fast as it can write), this measures:

1. **client CPU per 1,000 streamed tokens**: ``time.process_time()`` of this process (and, with
   workers, the CPU of the worker processes, ``RUSAGE_CHILDREN``) over an open-loop level, divided
   by the output tokens received;
2. **the largest token rate ingested before send lag grows**: open-loop levels of rising request
   rate, each request streaming ``--tokens`` tokens paced by ``--token-delay`` (so each stream
   lasts tokens × delay and the offered token rate is rate × tokens), with one process and with
   ``--workers N``; per level the send-lag p99 (``engine.saturation``) and the token rate that
   came back. The answer is the highest offered token rate not marked client-bound (send-lag
   p99 under ``engine.saturation.lag_limit_s``).

A throw-away level runs first so imports are not counted; with workers, each level starts its
worker processes, and their start-up CPU is part of that level's figure.

Usage::

    python bench/bench_client.py [--tokens 200] [--token-delay 0.005] [--rates 5,10,20,40,80]
        [--workers 2] [--seconds 4] [--append]

``--append`` adds the section to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llmbench_tui.engine.arrivals import Arrival, LoadSpec  # noqa: E402
from llmbench_tui.engine.runner import Engine, Plan  # noqa: E402
from llmbench_tui.engine.saturation import lag_limit_s, rate_levels  # noqa: E402
from llmbench_tui.engine.workload import Workload  # noqa: E402
from llmbench_tui.schema import ModelSpec, Options, PromptSpec  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(tokens: int, delay: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "support" / "ollama_server.py"), "--port", str(port),
         "--tokens", str(tokens), "--token-delay", str(delay), "--no-delays"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    proc.stdout.readline()  # "Ollama test server on ..." once it listens
    return proc, f"http://127.0.0.1:{port}"


def level(url: str, rate: float, seconds: float, workers: int, tokens: int) -> dict:
    load = LoadSpec([rate], Arrival("constant"), duration_s=seconds, seed=1, workers=workers)
    plan = Plan(
        models=[ModelSpec.parse(f"ollama:smollm-fake:135m@{url}")],
        prompts=[PromptSpec(id="p", text="stream")],
        options=Options(max_tokens=tokens + 8),
        repetitions=1,
        warmup=0,
        workload=Workload([], [1], [], load=load),
    )
    cpu0, kids0 = time.process_time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    finished = asyncio.run(Engine(plan).run())
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = time.process_time() - cpu0
    cpu += (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
    records = [r.to_json() for r in finished.records]
    (lv,) = rate_levels(records)
    out_tokens = sum((r.get("tokens") or {}).get("output") or 0 for r in records)
    return {
        "rate": rate,
        "workers": workers,
        "offered_tok_s": rate * tokens,
        "got_tok_s": lv.output_tok_s,
        "ok": f"{lv.n_ok}/{lv.n_runs}",
        "lag_p50_ms": (lv.lag_s["p50"] or 0) * 1000,
        "lag_p99_ms": (lv.lag_s["p99"] or 0) * 1000,
        "cpu_per_1k": cpu / out_tokens * 1000 if out_tokens else None,
        "bound": bool(lv.client_bound),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tokens", type=int, default=200)
    p.add_argument("--token-delay", type=float, default=0.005)
    p.add_argument("--rates", default="5,10,20,40,80")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--append", action="store_true")
    args = p.parse_args()
    server, url = start_server(args.tokens, args.token_delay)
    rows = []
    try:
        level(url, 5.0, 1.0, 1, args.tokens)  # warm: imports and first connections
        for workers in (1, args.workers):
            for rate in [float(r) for r in args.rates.split(",")]:
                row = level(url, rate, args.seconds, workers, args.tokens)
                rows.append(row)
                print(row, file=sys.stderr, flush=True)
    finally:
        server.terminate()
        server.wait(timeout=10)
    header = ("| workers | offered req/s | offered tok/s | received tok/s | ok | lag p50 ms | "
              "lag p99 ms | client CPU s / 1k tokens | client-bound |")  # fmt: skip
    lines = [header, "|" + "---|" * 9]
    for r in rows:
        got = "-" if r["got_tok_s"] is None else f"{r['got_tok_s']:.0f}"
        cpu = "-" if r["cpu_per_1k"] is None else f"{r['cpu_per_1k']:.3f}"
        lines.append(f"| {r['workers']} | {r['rate']:g} | {r['offered_tok_s']:.0f} | {got} | "
                     f"{r['ok']} | {r['lag_p50_ms']:.1f} | {r['lag_p99_ms']:.1f} | {cpu} | "
                     f"{'yes' if r['bound'] else 'no'} |")  # fmt: skip
    best = {}
    for workers in (1, args.workers):
        under = [r["offered_tok_s"] for r in rows
                 if r["workers"] == workers and not r["bound"]]  # fmt: skip
        best[workers] = max(under) if under else None
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()

    def fmt(value: float | None) -> str:
        return "none of the rates tried" if value is None else f"{value:.0f} tok/s"
    text = "\n".join([
        "", "## Client ingest: CPU per 1,000 tokens and send lag (`bench/bench_client.py`)", "",
        f"{when}, {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"load average {load[0]:.1f} at the end (the machine is shared). Server: "
        f"`tests/support/ollama_server.py --tokens {args.tokens} --token-delay {args.token_delay} "
        "--no-delays` in its own process; constant arrivals, "
        f"{args.seconds:g} s per level.", "",
        "    python bench/bench_client.py " + " ".join(sys.argv[1:]), "",
        *lines, "",
        "Largest offered token rate not client-bound (send lag p99 <= "
        f"max(5 ms, 5 % of the mean gap), e.g. {lag_limit_s(20) * 1000:g} ms at 20 req/s): "
        "1 process "
        f"{fmt(best[1])}, {args.workers} processes {fmt(best[args.workers])}.", "",
    ])  # fmt: skip
    print(text)
    if args.append:
        with (ROOT / "bench" / "RESULTS.md").open("a", encoding="utf-8") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
