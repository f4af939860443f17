"""llmbench's in-process prompt/decode rates against llama-bench's, same model, same threads.

``llama-bench`` is built from the llama.cpp sources vendored in the ``llama-cpp-python`` sdist of
the installed version, with the same CMake options llama-cpp-python is built with here, so both
tools run the same ggml code. The two tools are alternated for ``--rounds`` rounds (the order
flips every round) so a noisy shared machine weighs on both alike.

What is compared, per round (each tool: ``--reps`` measured runs after one warm-up):

- ``pp{P}``: llama-bench's prompt rate at depth 0 against llmbench's cell ``pp{P}+tg{T}``
  prefill rate — the engine's counter (``server.prompt_tok_s``, llama.cpp perf counters) and the
  client's ``P / TTFT``;
- ``tg{T} @ d{P}``: llama-bench's ``-n T -d P`` generation rate against the same cell's decode
  rate — perf counters (``server.decode_tok_s``) and the client's (``timings.decode_tok_s``,
  which also pays for llama-cpp-python's Python-side sampling).

llama-bench runs with ``-fa 0 -b 512 -ub 512`` because that is what llama-cpp-python's ``Llama``
uses by default (flash attention off, n_batch = n_ubatch = 512).

Usage::

    python bench/bench_llamabench.py --threads 2 --rounds 3 --reps 5 [--append]

The build (``bench/llama_cpp_build.py``) is cached outside the repository; the runs' JSON files go
to ``bench/.build`` (ignored by git); ``--append`` adds the result section to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

from llama_cpp_build import DEFAULT_CMAKE_ARGS, build, installed_version

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "bench" / ".build"


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("$ " + shlex.join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, **kw)


def run_llama_bench(binary: Path, model: Path, pp: int, tg: int, threads: int, reps: int):
    cmd = [str(binary), "-m", str(model), "-t", str(threads), "-r", str(reps), "-fa", "0",
           "-b", "512", "-ub", "512", "-o", "json", "-p", f"{pp}", "-n", "0"]  # fmt: skip
    pp_out = json.loads(sh(cmd, capture_output=True, text=True).stdout)
    cmd_tg = [*cmd[:-4], "-p", "0", "-n", f"{tg}", "-d", f"{pp}"]
    tg_out = json.loads(sh(cmd_tg, capture_output=True, text=True).stdout)
    (p,) = [e for e in pp_out if e["n_prompt"] == pp and e["n_gen"] == 0]
    (g,) = [e for e in tg_out if e["n_gen"] == tg and e["n_prompt"] == 0]
    return {"pp": p["avg_ts"], "tg": g["avg_ts"], "build": p.get("build_commit"),
            "cmd": [shlex.join(cmd), shlex.join(cmd_tg)]}  # fmt: skip


def run_llmbench(pp: int, tg: int, threads: int, reps: int, out: Path):
    cmd = [sys.executable, "-m", "llmbench_tui.cli", "--batch", "--pp", str(pp), "--tg", str(tg),
           "-n", str(reps), "--warmup", "1", "--no-store", "--sample-interval", "1",
           "--json", str(out)]  # fmt: skip
    env = {**os.environ, "LLMBENCH_GGUF_THREADS": str(threads)}
    sh(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    runs = [r for r in json.loads(out.read_text()) if not r["warmup"] and r["status"] == "ok"]
    mean = statistics.fmean
    return {
        "pp": mean(r["server"]["prompt_tok_s"] for r in runs),
        "pp_client": mean(pp / r["timings"]["ttft_s"] for r in runs),
        "tg": mean(r["server"]["decode_tok_s"] for r in runs),
        "tg_client": mean(r["timings"]["decode_tok_s"] for r in runs),
        "exact": all(r["tokens"]["prompt"] == pp and r["tokens"]["output"] == tg for r in runs),
        "n": len(runs),
        "cmd": f"LLMBENCH_GGUF_THREADS={threads} python " + shlex.join(cmd[1:]),
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pp", type=int, default=512)
    ap.add_argument("--tg", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cmake-args", default=os.environ.get("CMAKE_ARGS", DEFAULT_CMAKE_ARGS))
    ap.add_argument("--append", action="store_true", help="append the section to RESULTS.md")
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT))
    import llama_cpp

    from llmbench_tui.backends.embedded import embedded_model_path

    version = installed_version()
    binary = build("llama-bench", args.cmake_args, version)
    BUILD.mkdir(parents=True, exist_ok=True)
    (BUILD / ".gitignore").write_text("*\n")
    model = embedded_model_path()
    load_before = os.getloadavg()
    lb, ours = [], []
    for rnd in range(args.rounds):
        order = ("lb", "ours") if rnd % 2 == 0 else ("ours", "lb")
        for tool in order:
            if tool == "lb":
                lb.append(run_llama_bench(binary, model, args.pp, args.tg, args.threads,
                                          args.reps))  # fmt: skip
                print(f"round {rnd + 1} llama-bench: {lb[-1]['pp']:.1f} / {lb[-1]['tg']:.1f}",
                      file=sys.stderr)  # fmt: skip
            else:
                ours.append(run_llmbench(args.pp, args.tg, args.threads, args.reps,
                                         BUILD / f"llmbench-round{rnd}.json"))  # fmt: skip
                print(f"round {rnd + 1} llmbench: {ours[-1]['pp']:.1f} / {ours[-1]['tg']:.1f}",
                      file=sys.stderr)  # fmt: skip
    load_after = os.getloadavg()
    mean = statistics.fmean

    def fig(rows, key):
        return mean(r[key] for r in rows)

    lines = [
        "",
        f"## llmbench in-process vs llama-bench (SmolLM2-135M Q4_1, {args.threads} threads)",
        "",
        f"`python bench/bench_llamabench.py --threads {args.threads} --pp {args.pp} "
        f"--tg {args.tg} --reps {args.reps} --rounds {args.rounds}` on {cpu_name()}, "
        f"{os.cpu_count()} vCPU, {platform.system()} {platform.release()}; load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after. llama-cpp-python {version}, "
        f"llama-bench built from its vendored llama.cpp (build {lb[0]['build']}) with "
        f"`{args.cmake_args}`; ggml features of the installed library: "
        f"`{llama_cpp.llama_print_system_info().decode().strip()}`.",
        "",
        f"Means over rounds below; the two tools alternate for {args.rounds} rounds (order "
        f"flipped each round), each round {args.reps} measured runs after one warm-up. Commands:",
        "",
        *(f"    {c}" for c in lb[0]["cmd"]),
        f"    {ours[0]['cmd']}",
        "",
        "| test | llama-bench t/s | llmbench t/s (perf counters) | ratio | "
        "llmbench client t/s | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, label in (("pp", f"pp{args.pp}"), ("tg", f"tg{args.tg} @ d{args.pp}")):
        ref, eng, cli = fig(lb, key), fig(ours, key), fig(ours, f"{key}_client")
        lines.append(f"| {label} | {ref:.1f} | {eng:.1f} | {eng / ref:.3f} | {cli:.1f} | "
                     f"{cli / ref:.3f} |")  # fmt: skip
    # Each round ran the two tools back to back: the ratio within a round is the least disturbed
    # by the machine's load changing over minutes; its median over rounds is given too.
    paired = []
    for key in ("pp", "tg"):
        eng = statistics.median(b[key] / a[key] for a, b in zip(lb, ours, strict=True))
        cli = statistics.median(b[f"{key}_client"] / a[key] for a, b in zip(lb, ours, strict=True))
        paired.append(f"{key} {eng:.3f} (perf counters), {cli:.3f} (client)")
    lines += ["", "Median over rounds of the within-round ratio llmbench / llama-bench: "
              + "; ".join(paired) + "."]  # fmt: skip
    per_round = "; ".join(
        f"round {i + 1}: llama-bench {a['pp']:.1f}/{a['tg']:.1f}, llmbench {b['pp']:.1f}/"
        f"{b['tg']:.1f}"
        for i, (a, b) in enumerate(zip(lb, ours, strict=True))
    )
    lines += [
        "",
        f"Per round (pp/tg t/s): {per_round}. Every llmbench run had exactly {args.pp} prompt "
        f"and {args.tg} output tokens: {all(o['exact'] for o in ours)}.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.append:
        with (ROOT / "bench" / "RESULTS.md").open("a", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
