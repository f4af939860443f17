"""``llmbench calibrate``: measure this machine's memory bandwidth as the CPU's peak for ``mbu``.

Decode on a CPU is bound by how fast the weights stream from RAM, so the model-bandwidth
utilisation needs a peak figure. Vendors' figures are rarely known to users; a short large-array
copy (well beyond any cache) gives the bandwidth this machine actually sustains. A copy of N bytes
moves 2N bytes (read + write), counted as such, like STREAM's "copy". The best of several passes
is kept: slower passes only show interference from other processes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path

from ..config import data_dir as resolve_data_dir
from ..telemetry.efficiency import CALIBRATION_FILE

DEFAULT_MB = 256


def measure(seconds: float = 2.5, size_mb: int = DEFAULT_MB) -> tuple[float, str]:
    """Best copy bandwidth in GB/s over about ``seconds``, and the method used."""
    nbytes = size_mb * 1024 * 1024
    try:
        import numpy as np

        src = np.ones(nbytes, dtype=np.uint8)
        dst = np.empty_like(src)

        def copy() -> None:
            np.copyto(dst, src)

        method = "numpy.copyto"
    except ImportError:  # numpy is optional: memoryview slice assignment is a plain memcpy too
        src_b, dst_b = bytearray(b"\x01") * nbytes, bytearray(nbytes)
        src_v, dst_v = memoryview(src_b), memoryview(dst_b)

        def copy() -> None:
            dst_v[:] = src_v

        method = "memoryview copy"
    copy()  # first touch: page faults, not bandwidth
    best = float("inf")
    deadline = time.perf_counter() + seconds
    passes = 0
    while passes < 3 or time.perf_counter() < deadline:
        t = time.perf_counter()
        copy()
        best = min(best, time.perf_counter() - t)
        passes += 1
    return 2 * nbytes / best / 1e9, method


def build_parser(prog: str = "llmbench calibrate") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Measure memory bandwidth (a ~2-3 s large-array copy) and store it as the "
        "CPU's peak for model-bandwidth utilisation (mbu). LLMBENCH_CPU_PEAK_GB_S overrides it.",
    )
    parser.add_argument("--data-dir", help="where calibration.json is stored")
    parser.add_argument(
        "--seconds", type=float, default=2.5, help="how long to measure (default 2.5)"
    )
    parser.add_argument(
        "--size-mb", type=int, default=DEFAULT_MB, help="array size in MiB (default 256)"
    )
    return parser


def main(args: argparse.Namespace) -> int:
    """Run from ``llmbench calibrate`` (the CLI parses with ``build_parser``)."""
    if args.seconds <= 0 or args.size_mb < 16:
        print("llmbench calibrate: --seconds must be positive and --size-mb at least 16.")
        return 2
    try:
        folder = resolve_data_dir(args.data_dir)
    except OSError as exc:
        print(f"llmbench calibrate: cannot use the data directory: {exc.strerror or exc}.")
        return 1
    try:
        gb_s, method = measure(args.seconds, args.size_mb)
    except MemoryError:
        print(f"llmbench calibrate: not enough memory for two {args.size_mb} MiB arrays.")
        return 1
    result = {
        "peak_gb_s": round(gb_s, 2),
        "method": method,
        "size_mb": args.size_mb,
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    path = Path(folder) / CALIBRATION_FILE
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(result, indent=1))
        os.replace(tmp, path)
    except OSError as exc:
        print(f"llmbench calibrate: cannot write {path}: {exc.strerror or exc}.")
        return 1
    print(f"memory bandwidth: {gb_s:.1f} GB/s ({method}); stored in {path}")
    if os.environ.get("LLMBENCH_CPU_PEAK_GB_S"):
        print("note: LLMBENCH_CPU_PEAK_GB_S is set and takes precedence over this measurement.")
    return 0
