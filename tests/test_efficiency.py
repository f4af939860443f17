"""Efficiency formulas, RAPL counters (incl. wraparound) and the calibrate command."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from llmbench_tui.commands import calibrate
from llmbench_tui.engine.efficiency import (
    Rapl,
    counter_delta,
    cpu_peak_gb_s,
    derive,
    integrate_power,
)
from llmbench_tui.engine.nvml import Nvml
from llmbench_tui.engine.telemetry import TelemetryHub
from llmbench_tui.schema import RunRecord

MAX_RANGE = 262_143_328_850


def _zone(root: Path, name: str, label: str, energy: int | str, max_range: int = MAX_RANGE):
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "name").write_text(label + "\n")
    (zone / "energy_uj").write_text(f"{energy}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_range}\n")
    return zone


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture
def powercap(tmp_path: Path) -> Path:
    root = tmp_path / "powercap"
    _zone(root, "intel-rapl:0", "package-0", 1_000_000)
    _zone(root, "intel-rapl:0:0", "core", 500_000)  # inside package-0: must not be added
    _zone(root, "intel-rapl:1", "package-1", MAX_RANGE - 1_000_000)
    return root


def test_rapl_reads_packages_only(powercap: Path) -> None:
    rapl = Rapl(powercap)
    assert rapl.readable
    assert [d.name for d in rapl.domains] == ["package-0", "package-1"]
    assert rapl.read() == (1_000_000, MAX_RANGE - 1_000_000)


def test_rapl_energy_handles_wraparound(powercap: Path) -> None:
    rapl = Rapl(powercap)
    readings = [
        (1_000_000, MAX_RANGE - 1_000_000),
        (2_000_000, 500_000),  # package-1 wrapped: 1.0 J to the top + 0.5 J
        (4_000_000, 2_500_000),
    ]
    # package-0: 3.0 J; package-1: 1.0 + 0.5 + 2.0 = 3.5 J
    assert rapl.energy_j(readings) == pytest.approx(6.5)


def test_rapl_unreadable_is_not_an_error(tmp_path: Path) -> None:
    root = tmp_path / "powercap"
    zone = _zone(root, "intel-rapl:0", "package-0", 0)
    (zone / "energy_uj").write_text("not a number")
    assert not Rapl(root).readable
    assert not Rapl(tmp_path / "absent").readable


def test_counter_delta_and_power_integration() -> None:
    assert counter_delta([10.0, 15.0, 25.0]) == 15.0
    assert counter_delta([90.0, 5.0], wrap=100.0) == 15.0
    assert counter_delta([90.0, 5.0]) is None  # reset with no known range: unknowable
    assert counter_delta([1.0]) is None
    # 100 W for 1 s, then ramp 100 -> 200 W over 2 s: 100 + 300 = 400 J
    assert integrate_power([0.0, 1.0, 3.0], [100.0, 100.0, 200.0]) == pytest.approx(400.0)
    assert integrate_power([0.0, 1.0, 2.0], [100.0, None, 100.0]) is None


def test_cpu_peak_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMBENCH_CPU_PEAK_GB_S", raising=False)
    assert cpu_peak_gb_s(tmp_path) == (None, None)
    (tmp_path / "calibration.json").write_text(json.dumps({"peak_gb_s": 21.5}))
    assert cpu_peak_gb_s(tmp_path) == (21.5, "calibration")
    monkeypatch.setenv("LLMBENCH_CPU_PEAK_GB_S", "80")
    assert cpu_peak_gb_s(tmp_path) == (80.0, "env")


def test_calibrate_stores_a_plausible_bandwidth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LLMBENCH_CPU_PEAK_GB_S", raising=False)
    parse = calibrate.build_parser().parse_args
    assert (
        calibrate.main(parse(["--data-dir", str(tmp_path), "--seconds", "0.3", "--size-mb", "64"]))
        == 0
    )
    stored = json.loads((tmp_path / "calibration.json").read_text())
    assert 0.5 < stored["peak_gb_s"] < 2000  # any real machine's RAM lies in here
    assert cpu_peak_gb_s(tmp_path) == (stored["peak_gb_s"], "calibration")
    assert "GB/s" in capsys.readouterr().out
    assert calibrate.main(parse(["--data-dir", str(tmp_path), "--seconds", "0"])) == 2


def _record(**kw) -> RunRecord:
    base = dict(
        id="r1",
        session_id="s1",
        started_at="2026-01-01T00:00:00Z",
        model="m",
        model_spec="ollama:m",
        backend="ollama",
        prompt="p",
        status="ok",
    )
    base.update(kw)
    return RunRecord(**base)


GPU_ENV = {
    "gpus": [{"index": 0, "peak_gb_s": 1000.0}],
    "cpu_peak_gb_s": 50.0,
    "cpu_peak_source": "calibration",
}


def test_derive_gpu_run() -> None:
    record = _record(
        tokens={"output": 100},
        timings={"decode_tok_s": 50.0},
        telemetry={
            "gpus": [{"index": 0, "energy_j": 20.0, "util_pct": {"mean": 90, "max": 99}}],
            "cpu_energy_j": 10.0,
        },
    )
    env = {**GPU_ENV, "models": {"ollama:m": {"size_bytes": 2_000_000_000, "vram_fraction": 1.0}}}
    eff, warns = derive(record, env)
    assert eff.j_per_token == pytest.approx(0.3)  # (20 + 10) J / 100 tokens
    assert eff.achieved_gb_s == pytest.approx(100.0)  # 2e9 B × 50 tok/s
    assert eff.mbu == pytest.approx(0.1)
    assert eff.model_extra["ceiling_tok_s"] == pytest.approx(500.0)  # 1000 GB/s / 2 GB
    assert eff.model_extra["device"] == "gpu"
    assert warns == []


def test_derive_mixed_run_and_warnings() -> None:
    record = _record(
        tokens={"output": 10},
        timings={"decode_tok_s": 5.0},
        telemetry={
            "gpus": [{"index": 0, "energy_j": None, "util_pct": {"mean": 20.0, "max": 40.0}}],
            "cpu_freq_mhz": {"mean": 2500, "max": 3000, "min": 1800},
            "swap_used_mb": {"mean": 10, "max": 60, "delta": 50.0},
        },
    )
    env = {**GPU_ENV, "models": {"ollama:m": {"size_bytes": 1_000_000_000, "vram_fraction": 0.5}}}
    eff, warns = derive(record, env)
    assert eff.j_per_token is None  # no energy known
    peak = 1 / (0.5 / 1000 + 0.5 / 50)  # half the bytes at GPU speed, half at CPU speed
    assert eff.model_extra["peak_gb_s"] == pytest.approx(peak)
    assert eff.mbu == pytest.approx(5.0 / peak)
    joined = " ".join(warns)
    assert "GPU utilization was low" in joined
    assert "Only 50 % of m is in VRAM" in joined
    assert "1800 MHz" in joined
    assert "Swap use grew by 50 MiB" in joined


def test_derive_cpu_run_without_peak_or_model() -> None:
    record = _record(tokens={"output": 10}, timings={"decode_tok_s": 5.0}, telemetry=None)
    eff, warns = derive(record, {"gpus": []})
    assert eff.achieved_gb_s is None and eff.mbu is None
    assert eff.model_extra["device"] == "cpu"
    assert warns == []


def test_derive_remote_server_keeps_bandwidth_only() -> None:
    record = _record(
        host="http://gpu-box:11434",
        tokens={"output": 100},
        timings={"decode_tok_s": 50.0},
        telemetry={"gpus": [{"index": 0, "energy_j": 20.0, "util_pct": {"mean": 5, "max": 9}}]},
    )
    env = {**GPU_ENV, "models": {"ollama:m": {"size_bytes": 2_000_000_000, "vram_fraction": 0.3}}}
    eff, warns = derive(record, env)
    assert eff.achieved_gb_s == pytest.approx(100.0)
    assert eff.j_per_token is None and eff.mbu is None  # this machine's GPU is not that one
    assert len(warns) == 1 and "Only 30 % of m is in VRAM" in warns[0]


def test_hub_reports_cpu_energy_from_rapl(powercap: Path) -> None:
    """The sampler reads RAPL every tick; the run's energy is the counter growth across it."""
    energy = powercap / "intel-rapl:0" / "energy_uj"
    hub = TelemetryHub(0.05, rapl=Rapl(powercap), nvml=Nvml(lib=_NoNvml()))
    hub.start()
    try:
        time.sleep(0.3)
        t0 = time.perf_counter_ns()
        time.sleep(0.02)
        _write_atomic(energy, "3500000\n")  # +2.5 J on package-0
        time.sleep(0.3)
        t1 = time.perf_counter_ns()
        summary, _ = hub.run_window(t0, t1)
    finally:
        hub.stop()
    assert summary["cpu_energy_j"] == pytest.approx(2.5)


class _NoNvml:
    """A pynvml whose library is missing, as on this machine."""

    def nvmlInit(self) -> None:
        import pynvml

        raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
