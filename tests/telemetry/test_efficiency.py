"""Efficiency formulas, RAPL counters (wraparound), run-edge energy and the calibrate command."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from llmbench_tui.commands import calibrate
from llmbench_tui.schema import RunRecord
from llmbench_tui.telemetry.efficiency import (
    Rapl,
    counter_between,
    cpu_peak_gb_s,
    derive,
    power_between,
)
from llmbench_tui.telemetry.nvml import GpuReading, Nvml
from llmbench_tui.telemetry.sampler import Sample
from llmbench_tui.telemetry.telemetry import TelemetryHub

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
    times = [0.0, 1.0, 2.0]
    readings = [
        (1_000_000, MAX_RANGE - 1_000_000),
        (2_000_000, 500_000),  # package-1 wrapped: 1.0 J to the top + 0.5 J
        (4_000_000, 2_500_000),
    ]
    # package-0: 3.0 J; package-1: 1.0 + 0.5 + 2.0 = 3.5 J
    assert rapl.energy_j(times, readings, 0.0, 2.0) == pytest.approx(6.5)
    # [0.5, 1.5]: half of each interval: package-0 0.5 + 1.0 J, package-1 0.75 + 1.0 J
    assert rapl.energy_j(times, readings, 0.5, 1.5) == pytest.approx(3.25)
    # a package whose read failed at one tick is interpolated across it
    gap = [readings[0], (None, 500_000), readings[2]]
    assert rapl.energy_j(times, gap, 0.5, 1.5) == pytest.approx(1.5 + 1.75)
    assert rapl.energy_j(times, readings, -0.1, 1.0) is None  # start not bracketed


def test_rapl_unreadable_is_not_an_error(tmp_path: Path) -> None:
    root = tmp_path / "powercap"
    zone = _zone(root, "intel-rapl:0", "package-0", 0)
    (zone / "energy_uj").write_text("not a number")
    assert not Rapl(root).readable
    assert not Rapl(tmp_path / "absent").readable


def test_counter_between_interpolates_at_the_run_edges() -> None:
    # 100 W constant, counter in J read every 0.25 s; a 50 ms run inside one interval is 5 J,
    # not the 25 J of the whole interval the readings span
    constant = [(0.0, 1000.0), (0.25, 1025.0)]
    assert counter_between(constant, 0.10, 0.15) == pytest.approx(5.0)
    # over several intervals: interior readings count in full, the edges by interpolation
    ramp = [(0.0, 0.0), (1.0, 100.0), (2.0, 300.0), (3.0, 600.0)]
    assert counter_between(ramp, 0.5, 2.5) == pytest.approx(450.0 - 50.0)
    assert counter_between(ramp, 1.0, 2.0) == pytest.approx(200.0)  # edges on readings: exact
    # a counter that steps: flat, then +50 between 0.25 and 0.5; the run [0.3, 0.45] gets the
    # interpolated share (60 %), neither the whole step nor nothing
    step = [(0.0, 10.0), (0.25, 10.0), (0.5, 60.0)]
    assert counter_between(step, 0.3, 0.45) == pytest.approx(30.0)
    assert counter_between(step, 0.05, 0.2) == 0.0
    assert counter_between(constant, 0.1, 0.1) == 0.0
    # wraparound and resets, outside and inside the run's bracket
    assert counter_between([(0.0, 90.0), (1.0, 5.0)], 0.0, 1.0, wrap=100.0) == 15.0
    assert counter_between([(0.0, 90.0), (1.0, 5.0)], 0.0, 1.0) is None  # reset: unknowable
    reset_before = [(0.0, 500.0), (1.0, 3.0), (2.0, 13.0)]
    assert counter_between(reset_before, 1.2, 1.7) == pytest.approx(5.0)  # not in the bracket
    # readings that do not bracket both edges give no figure
    assert counter_between(constant, -0.1, 0.1) is None
    assert counter_between(constant, 0.1, 0.3) is None
    assert counter_between([], 0.0, 1.0) is None


def test_power_between_clips_the_trapezoids() -> None:
    # 100 W constant: a 50 ms run inside a 0.25 s interval is 5 J
    assert power_between([(0.0, 100.0), (0.25, 100.0)], 0.10, 0.15) == pytest.approx(5.0)
    # 100 W for 1 s, then ramp 100 -> 200 W over 2 s: whole span 100 + 300 = 400 J
    ramp = [(0.0, 100.0), (1.0, 100.0), (3.0, 200.0)]
    assert power_between(ramp, 0.0, 3.0) == pytest.approx(400.0)
    # [0.5, 2.0]: 0.5 s at 100 W, then 100 -> 150 W over 1 s: 50 + 125 J
    assert power_between(ramp, 0.5, 2.0) == pytest.approx(175.0)
    # a missing reading is bridged by its neighbours
    assert power_between([(0.0, 100.0), (1.0, None), (2.0, 100.0)], 0.0, 2.0) == 200.0
    assert power_between([(0.0, None), (1.0, 100.0)], 0.5, 1.0) is None  # start unbracketed
    assert power_between([(0.0, None), (1.0, None)], 0.0, 1.0) is None


def _sample(t_s: float, *, gpu_mj: float | None, gpu_w: float, rapl_uj: tuple[int, int]) -> Sample:
    """A sample as the sampler records it, at ``t_s`` seconds on the perf_counter clock."""
    return Sample(
        t_ns=int(t_s * 1e9),
        cpu_pct=50.0,
        per_core_pct=(50.0, 50.0),
        cpu_freq_mhz=2500.0,
        ram_used_mb=1000.0,
        ram_available_mb=3000.0,
        swap_used_mb=0.0,
        rapl_uj=rapl_uj,
        gpus=(GpuReading(index=0, power_w=gpu_w, energy_mj=gpu_mj, util_pct=90.0),),
    )


@pytest.mark.parametrize("counter", [True, False], ids=["counter", "power"])
def test_short_run_energy_is_the_run_not_the_interval(powercap: Path, counter: bool) -> None:
    """Recorded samples at 0.25 s: GPU at a constant 100 W, CPU packages at 20 W and 10 W.

    The run is 50 ms inside one interval, so the only in-run point is the extra sample after it;
    the energy must be 50 ms worth (5 J GPU, 1.5 J CPU), not the interval's (25 J, 7.5 J).
    """
    base = 1000.0  # the perf_counter clock does not start at 0

    def at(t: float) -> Sample:
        mj = 7_000.0 + 100_000.0 * t if counter else None  # 100 W = 100 000 mJ/s
        uj = (5_000_000 + int(20e6 * t), 9_000_000 + int(10e6 * t))
        return _sample(base + t, gpu_mj=mj, gpu_w=100.0, rapl_uj=uj)

    span = [at(0.0), at(0.25)]  # Sampler.span: the sample before the run and the one after
    t0, t1 = int((base + 0.10) * 1e9), int((base + 0.15) * 1e9)
    hub = TelemetryHub(0.25, rapl=Rapl(powercap), nvml=Nvml(lib=_NoNvml()))
    summary, series = hub.summarize(span, t0, t1)

    gpu = summary["gpus"][0]
    assert gpu["energy_source"] == ("counter" if counter else "power")
    assert gpu["energy_j"] == pytest.approx(5.0, abs=0.01)
    assert summary["cpu_energy_j"] == pytest.approx(1.5, abs=0.01)
    assert summary["samples"] == 1 and series["t_s"] == [0.15]  # the extra sample stands in
    record = _record(tokens={"output": 10}, timings={"decode_tok_s": 200.0}, telemetry=summary)
    eff, _ = derive(record, {"gpus": [{"index": 0, "peak_gb_s": 1000.0}]})
    assert eff.model_extra["energy_j"] == pytest.approx(6.5, abs=0.02)
    assert eff.j_per_token == pytest.approx(0.65, abs=0.002)


def test_run_over_several_intervals_counts_only_its_own_share(powercap: Path) -> None:
    """Power 100 W, then 300 W from the second interval on; the run starts 0.2 s into the first
    interval and ends 0.05 s into the fourth: 0.05 s × 100 + 0.5 s × 300 + 0.05 s × 300 J."""
    readings = [(0.0, 0.0), (0.25, 25_000.0), (0.5, 100_000.0), (0.75, 175_000.0), (1.0, 250_000.0)]
    # power reads 0 W: were the fallback used instead of the counter, the figure would be 0
    span = [_sample(t, gpu_mj=mj, gpu_w=0.0, rapl_uj=(0, 0)) for t, mj in readings]
    hub = TelemetryHub(0.25, rapl=Rapl(powercap), nvml=Nvml(lib=_NoNvml()))
    summary, _ = hub.summarize(span, int(0.2e9), int(0.8e9))
    # the counter between readings: 100 W in [0, 0.25], 300 W after; edges interpolated
    assert summary["gpus"][0]["energy_j"] == pytest.approx(0.05 * 100 + 0.55 * 300)
    assert summary["samples"] == 3  # 0.25, 0.5 and 0.75 lie inside [0.2, 0.8]


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


def _wait_for(predicate, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_hub_reports_cpu_energy_from_rapl(powercap: Path) -> None:
    """The live sampler reads RAPL every tick; the run's energy is the counter growth inside it.

    The counter steps only once a tick inside the run has read the old value, and the run ends
    after a tick has read the new one, so both edges are bracketed by flat readings and the
    figure is exactly the step, whatever the ticks' timing.
    """
    energy = powercap / "intel-rapl:0" / "energy_uj"
    hub = TelemetryHub(0.05, rapl=Rapl(powercap), nvml=Nvml(lib=_NoNvml()))
    hub.start()
    try:
        assert _wait_for(lambda: hub.sampler.latest() is not None)
        t0 = time.perf_counter_ns()
        assert _wait_for(lambda: hub.sampler.window(t0, time.perf_counter_ns()))
        _write_atomic(energy, "3500000\n")  # +2.5 J on package-0
        written = time.perf_counter_ns()
        assert _wait_for(lambda: hub.sampler.window(written, time.perf_counter_ns()))
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
