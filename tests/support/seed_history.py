"""Realistic run records for history tests, snapshots and benchmarks of the history screen.

``make_runs(n)`` produces ``(record, series)`` pairs that validate as ``RunRecord``: several models
on several backends and hosts, a handful of prompts, sessions spread over six weeks, mostly ``ok``
runs with some errors, timeouts and cancellations, telemetry summaries with their series, token
arrival times, scores and energy where a GPU exists. Everything is drawn from one seeded RNG and a
fixed start date, so a snapshot of a seeded database never changes.

Run it to fill a data directory: ``python tests/support/seed_history.py --data-dir D --runs 10000``.
"""

from __future__ import annotations

import argparse
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from llmbench_tui.config import db_path
from llmbench_tui.schema import RunRecord
from llmbench_tui.store import Store

START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)

GPU_BOX, LOCAL, LLAMA_SERVER = (
    "http://gpu-box:11434",
    "http://127.0.0.1:11434",
    "http://127.0.0.1:8080",
)
# (spec label, model, backend, host, base decode tok/s, base ttft s, has GPU)
MODELS = [
    (f"ollama:qwen2.5:7b@{GPU_BOX}", "qwen2.5:7b", "ollama", GPU_BOX, 62.0, 0.09, True),
    (f"ollama:llama3.1:8b@{GPU_BOX}", "llama3.1:8b", "ollama", GPU_BOX, 55.0, 0.11, True),
    ("ollama:gemma2:9b", "gemma2:9b", "ollama", LOCAL, 21.0, 0.35, False),
    ("ollama:phi3:mini", "phi3:mini", "ollama", LOCAL, 34.0, 0.21, False),
    (
        f"openai:qwen2.5-1.5b@{LLAMA_SERVER}",
        "qwen2.5-1.5b",
        "openai",
        LLAMA_SERVER,
        88.0,
        0.05,
        False,
    ),
    ("embedded", "SmolLM2-135M-Instruct-Q4_1", "gguf", None, 140.0, 0.03, False),
]

PROMPTS = [
    ("haiku", "Write a haiku about the sea.", None),
    ("sum-list", "Write a Python function that sums a list of integers.", "You are a terse coder."),
    ("capital", "What is the capital of Australia? Answer in one word.", None),
    ("explain-tcp", "Explain the TCP three-way handshake to a new engineer.", None),
    ("json-user", "Return a JSON object with fields name and age for a fictional user.", None),
    ("refactor-ts", "Refactor this untyped component to TypeScript with typed props.", None),
]

TEXT = (
    "the model answers quickly while tokens stream in steady bursts across the terminal and "
    "waves fold over quiet sand where engineers measure latency throughput memory and power"
)
WORDS = TEXT.split()

ERRORS = {
    "error": "cannot reach {host}: connection refused",
    "timeout": "no token within the 30 s time-to-first-token timeout",
    "cancelled": None,
}


def _response(rng: random.Random, n_words: int) -> str:
    words = [rng.choice(WORDS) for _ in range(n_words)]
    lines = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    return "\n".join(lines).capitalize()


def _series(rng: random.Random, e2e: float, ttft: float, tokens: int, gpu: bool) -> dict[str, Any]:
    """Telemetry samples every 0.25 s over the run and the arrival instant of each token."""
    n = max(2, int(e2e / 0.25) + 1)
    telemetry: dict[str, Any] = {
        "interval_s": 0.25,
        "t_s": [round(i * 0.25, 3) for i in range(n)],
        "cpu_pct": [round(rng.uniform(20, 95), 1) for _ in range(n)],
        "ram_used_mb": [round(9000 + rng.uniform(0, 400), 1) for _ in range(n)],
        "proc_cpu_pct": [round(rng.uniform(80, 380), 1) for _ in range(n)],
        "proc_rss_mb": [round(5200 + i * 2.0, 1) for i in range(n)],
    }
    if gpu:
        telemetry["gpus"] = [
            {
                "index": 0,
                "util_pct": [round(rng.uniform(70, 99), 1) for _ in range(n)],
                "power_w": [round(rng.uniform(180, 290), 1) for _ in range(n)],
                "mem_used_mb": [round(7400 + rng.uniform(0, 50), 1) for _ in range(n)],
            }
        ]
    arrivals, t = [], ttft
    step = (e2e - ttft) / max(1, tokens - 1)
    stall_at = rng.randrange(tokens) if rng.random() < 0.2 else -1
    for i in range(tokens):
        arrivals.append(round(t, 4))
        t += step * rng.uniform(0.7, 1.3) + (0.8 if i == stall_at else 0.0)
    return {"arrivals_s": arrivals, "telemetry": telemetry}


def _summary(values: list[float]) -> dict[str, float]:
    return {"mean": round(sum(values) / len(values), 2), "max": max(values)}


def make_run(rng: random.Random, index: int, session_id: str, when: datetime, model, prompt, rep):
    """One run record (``RunRecord.to_json()`` form) and its series, or ``None`` series."""
    label, name, backend, host, rate, ttft0, gpu = model
    prompt_id, text, system = prompt
    roll = rng.random()
    status = (
        "ok"
        if roll < 0.9
        else "error"
        if roll < 0.95
        else "timeout"
        if roll < 0.98
        else "cancelled"
    )
    drift = 1.0 - 0.08 * (when > START + timedelta(days=28) and name == "llama3.1:8b")
    decode = rate * drift * rng.uniform(0.92, 1.08)
    ttft = ttft0 * rng.uniform(0.85, 1.25)
    out_tokens = rng.randint(20, 160)
    record: dict[str, Any] = {
        "id": f"{when:%Y%m%d%H%M%S}-{index:06d}-{rng.getrandbits(32):08x}",
        "session_id": session_id,
        "started_at": when.isoformat().replace("+00:00", "Z"),
        "model": name,
        "model_spec": label,
        "backend": backend,
        "host": host,
        "prompt_id": prompt_id,
        "prompt": text,
        "system": system,
        "options": {"temperature": 0.0, "seed": 42, "max_tokens": 256, "num_ctx": 4096},
        "repetition": rep,
        "warmup": rep == 0,
        "status": status,
        "tags": ["nightly"] if when.weekday() < 5 else ["weekend"],
        "environment": {"os": "Linux 6.8", "cpu": "AMD Ryzen 9 7950X",
                        "gpus": ["RTX 4090"] if gpu else []},
    }  # fmt: skip
    if status != "ok":
        error = ERRORS[status]
        record["error"] = error.format(host=host or "the in-process engine") if error else None
        if status != "error":
            partial = rng.randint(1, 10)
            record["response"] = _response(rng, partial)
            record["tokens"] = {"prompt": 18, "output": partial, "source": "client"}
        return RunRecord.model_validate(record).to_json(), None
    e2e = ttft + (out_tokens - 1) / decode
    words = out_tokens * 3 // 4
    server_rate = decode * rng.uniform(1.02, 1.08)
    record.update(
        response=_response(rng, words),
        tokens={"prompt": 18 + len(text) // 4, "output": out_tokens, "source": "server"},
        timings={
            "ttft_s": round(ttft, 4),
            "e2e_s": round(e2e, 4),
            "tpot_s": round(1 / decode, 5),
            "decode_tok_s": round(decode, 2),
            "itl_p50_s": round(1 / decode, 5),
            "itl_p90_s": round(1.2 / decode, 5),
            "itl_p99_s": round(1.6 / decode, 5),
            "itl_max_s": round(2.5 / decode, 5),
            "itl_unit": "token",
            "chunks": out_tokens,
            "output_chars": words * 6,
            "bytes_per_s": round(words * 6 / e2e, 1),
        },
        server={
            "decode_tok_s": round(server_rate, 2),
            "prompt_tok_s": round(rng.uniform(300, 900), 1),
            "load_s": round(rng.uniform(0.01, 0.05), 3),
            "eval_count": out_tokens,
            "done_reason": "stop",
        }
        if backend != "gguf"
        else None,
        quality={"score": float(rng.choice([6, 8, 9, 10])), "checks": []}
        if prompt_id in ("sum-list", "json-user")
        else None,
    )
    series = _series(rng, e2e, ttft, out_tokens, gpu)
    tel = series["telemetry"]
    record["telemetry"] = {
        "interval_s": 0.25,
        "cpu_pct": _summary(tel["cpu_pct"]),
        "ram_used_mb": _summary(tel["ram_used_mb"]),
        "proc_cpu_pct": _summary(tel["proc_cpu_pct"]),
        "proc_rss_mb": _summary(tel["proc_rss_mb"]),
        "gpus": [],
    }
    if gpu:
        power = tel["gpus"][0]["power_w"]
        energy = sum(power) / len(power) * e2e
        record["telemetry"]["gpus"] = [
            {"index": 0, "name": "RTX 4090", "util_pct": _summary(tel["gpus"][0]["util_pct"]),
             "power_w": _summary(power), "energy_j": round(energy, 2)}
        ]  # fmt: skip
        record["efficiency"] = {"j_per_token": round(energy / out_tokens, 3)}
    return RunRecord.model_validate(record).to_json(), series


def make_runs(n: int, seed: int = 7) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """``n`` runs in sessions (2-3 models x 2 prompts x 4 repetitions) spread over six weeks."""
    rng = random.Random(seed)
    runs: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    when = START
    session = 0
    span = timedelta(days=42)
    while len(runs) < n:
        session += 1
        session_id = f"s{session:05d}"
        models = rng.sample(MODELS, rng.randint(2, 3))
        prompts = rng.sample(PROMPTS, 2)
        for model in models:
            for prompt in prompts:
                for rep in range(4):
                    if len(runs) >= n:
                        break
                    when += timedelta(seconds=rng.uniform(2, 9))
                    runs.append(make_run(rng, len(runs), session_id, when, model, prompt, rep))
        when += span / max(1, n // 24)
    return runs


def seed_store(store, n: int, seed: int = 7, batch: int = 500) -> list[dict[str, Any]]:
    """Insert ``n`` generated runs through ``store.add_runs`` in batches; returns the records.

    Batches keep seeding 10,000 runs to seconds (one atomic write each) instead of one fsynced
    rewrite per run, which is what ``add_run`` costs and what the store's own bench measures.
    """
    runs = make_runs(n, seed)
    for start in range(0, len(runs), batch):
        chunk = runs[start : start + batch]
        series = {rec["id"]: ser for rec, ser in chunk if ser}
        store.add_runs([rec for rec, _ in chunk], series)
    return [rec for rec, _ in runs]


def one_run_store(folder: Path, **fields: Any) -> Store:
    """A store in ``folder`` holding one generated run with ``fields`` changed (a hostile
    model name, an escape-laden answer); the caller closes it."""
    store = Store(db_path(folder))
    record, series = make_runs(1)[0]
    record.update(fields)
    store.add_run(record, series)
    return store


def main(argv: list[str] | None = None) -> int:
    from llmbench_tui.config import db_path
    from llmbench_tui.store import Store

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    store = Store(db_path(args.data_dir))
    try:
        seed_store(store, args.runs, args.seed)
        print(f"{store.count()} runs in {db_path(args.data_dir)}")
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
