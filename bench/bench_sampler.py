"""What the sampler costs: its own CPU time per sampled second, and its effect on decode speed.

Run: ``python bench/bench_sampler.py [--seconds 10] [--rounds 3] [--tokens 64] [--runs 40]``

1. CPU cost: a ``Sampler`` watching this process runs at 4 Hz and at 20 Hz for ``--seconds``
   each while the main thread sleeps; the sampler thread's own CPU clock
   (``pthread_getcpuclockid``) gives CPU seconds per wall second — i.e. the fraction of one core.
2. Closing-sample wait: every run's energy window needs a sample at or after its end, so
   ``Sampler.span`` wakes the thread for one; ``--runs`` fake runs of 20–300 ms at 4 Hz give the
   time ``span`` blocks after a run ends (it runs off the event loop, but delays the record).
3. Decode effect: the embedded SmolLM2 generates ``--tokens`` tokens, alternating without and
   with the 4 Hz sampler, ``--rounds`` times each, in one process; the ratio of the median decode
   rates (with / without) is the sampler's effect. Alternation spreads the machine's own drift
   over both arms.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

from llmbench_tui.telemetry.efficiency import Rapl
from llmbench_tui.telemetry.environment import embedded_path
from llmbench_tui.telemetry.nvml import Nvml
from llmbench_tui.telemetry.sampler import ProcessTarget, Sampler


def thread_cpu_s(sampler: Sampler) -> float:
    assert sampler.thread is not None and sampler.thread.ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(sampler.thread.ident))


def cpu_cost(hz: float, seconds: float) -> tuple[float, int]:
    """(CPU s per wall s of the sampler thread, samples taken) after a 1 s warm-up."""
    sampler = Sampler(1 / hz, nvml=Nvml(), rapl=Rapl())
    sampler.watch(ProcessTarget("self"))
    sampler.start()
    try:
        time.sleep(1.0)  # NVML init, imports, priming: a one-off, not the steady cost
        c0, t0, n0 = thread_cpu_s(sampler), time.perf_counter(), len(sampler.history(3600))
        time.sleep(seconds)
        c1, t1, n1 = thread_cpu_s(sampler), time.perf_counter(), len(sampler.history(3600))
    finally:
        sampler.stop()
    return (c1 - c0) / (t1 - t0), n1 - n0


def closing_waits_ms(runs: int) -> list[float]:
    """How long ``span`` blocks after each of ``runs`` fake runs (4 Hz sampler, this process)."""
    sampler = Sampler(0.25, nvml=Nvml(), rapl=Rapl())
    sampler.watch(ProcessTarget("self"))
    sampler.start()
    waits = []
    try:
        time.sleep(1.0)
        for i in range(runs):
            t0 = time.perf_counter_ns()
            time.sleep(0.02 + (i * 0.037) % 0.28)  # lengths spread over the 0.25 s grid
            t1 = time.perf_counter_ns()
            sampler.span(t0, t1)
            waits.append((time.perf_counter_ns() - t1) / 1e6)
    finally:
        sampler.stop()
    return waits


def decode_rate(llm, tokens: int) -> float:
    """Tokens per second of one greedy generation (wall clock, prompt included)."""
    t = time.perf_counter()
    out = llm.create_completion("The history of the lighthouse", max_tokens=tokens, temperature=0)
    elapsed = time.perf_counter() - t
    return out["usage"]["completion_tokens"] / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, load average {os.getloadavg()}"
    )
    for hz in (4, 20):
        cost, n = cpu_cost(hz, args.seconds)
        print(
            f"sampler at {hz:>2} Hz: {cost * 100:.3f} % of one core "
            f"({cost:.5f} CPU s per sampled s, {n} samples in {args.seconds:.0f} s, "
            f"{cost / hz * 1e3 if hz else 0:.2f} ms CPU per sample)"
        )

    waits = sorted(closing_waits_ms(args.runs))
    print(
        f"span() wait after a run ends ({len(waits)} runs, 4 Hz): median "
        f"{statistics.median(waits):.2f} ms, p90 {waits[int(0.9 * (len(waits) - 1))]:.2f} ms, "
        f"max {waits[-1]:.2f} ms"
    )

    try:
        import llama_cpp
    except ImportError:
        print("decode effect: skipped, llama-cpp-python is not installed")
        return 0
    llm = llama_cpp.Llama(
        model_path=str(embedded_path()), n_ctx=512, n_threads=args.threads, verbose=False, seed=1
    )
    decode_rate(llm, 8)  # warm-up
    without, with_ = [], []
    for _ in range(args.rounds):
        without.append(decode_rate(llm, args.tokens))
        sampler = Sampler(0.25, nvml=Nvml(), rapl=Rapl())
        sampler.watch(ProcessTarget("self"))
        sampler.start()
        time.sleep(0.3)
        try:
            with_.append(decode_rate(llm, args.tokens))
        finally:
            sampler.stop()
    ratio = statistics.median(with_) / statistics.median(without)
    print(f"decode without sampler: {', '.join(f'{r:.1f}' for r in without)} tok/s")
    print(f"decode with 4 Hz sampler: {', '.join(f'{r:.1f}' for r in with_)} tok/s")
    print(f"ratio (median with / median without): {ratio:.3f}")
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
