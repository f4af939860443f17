"""Telemetry from other hosts, through the Prometheus exporters they already run.

A model served by another machine (``ollama:NAME@HOST``, ``openai:...@URL``) leaves this
machine's sampler blind: its CPU, GPUs and queue are over there. ``--telemetry-url URL``
(repeatable; ``telemetry_urls`` in suites) names Prometheus endpoints on that machine; each is
scraped by its own thread (never the event loop) every ``interval_s`` into a ring buffer, and each
run slices its window out of it exactly like the local sampler:

- node_exporter: CPU busy % from ``node_cpu_seconds_total`` rates (every mode but idle and
  iowait, over all modes, all CPUs), memory used from ``node_memory_MemTotal_bytes`` minus
  ``node_memory_MemAvailable_bytes``, ``node_load1``, and the host from ``node_uname_info``;
- NVIDIA's DCGM exporter, per GPU: ``DCGM_FI_DEV_GPU_UTIL`` (%), ``DCGM_FI_DEV_FB_USED`` (MiB),
  ``DCGM_FI_DEV_POWER_USAGE`` (W), ``DCGM_FI_DEV_GPU_TEMP`` (°C) and the energy counter
  ``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`` (mJ), whose growth over the run is its energy;
- llama.cpp ``llama-server --metrics``: ``llamacpp:kv_cache_usage_ratio``,
  ``llamacpp:requests_processing``, ``llamacpp:requests_deferred`` (the queue) and the token
  counters (``llamacpp:tokens_predicted_total``, ``llamacpp:prompt_tokens_total`` and their
  ``*_seconds_total``), whose growth over the run is what the server did meanwhile.

The text is parsed with ``prometheus_client``'s parser, after dropping the lines of every other
metric (an exporter's page is mostly metrics nobody here reads, and parsing them all every second
would cost this process real CPU). Times are this machine's ``perf_counter_ns`` at the middle of
each request; the exporter's own clock is never compared with ours. DCGM refreshes its values only
every collection interval (``-c``, 30 s by default): give it ``-c 1000`` for runs of seconds.

A source that cannot be reached is a warning in the run's record (``telemetry.remote[i].error``),
never a failed run; after a failure the run's end does not wait for it.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

from .efficiency import counter_between

log = logging.getLogger(__name__)

MIB = 1024 * 1024
RING_SECONDS = 900.0
DEFAULT_INTERVAL_S = 1.0
DEFAULT_TIMEOUT_S = 2.0
MAX_BYTES = 16 * MIB

_NODE = (
    "node_cpu_seconds_total", "node_memory_MemTotal_bytes", "node_memory_MemAvailable_bytes",
    "node_load1", "node_uname_info",
)  # fmt: skip
_DCGM = (
    "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE",
    "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_SM_CLOCK", "DCGM_FI_DEV_MEM_CLOCK",
)  # fmt: skip
_LLAMA_PREFIX = "llamacpp:"
_LLAMA_GAUGES = (
    "kv_cache_usage_ratio", "kv_cache_tokens", "requests_processing", "requests_deferred",
    "n_busy_slots_per_decode",
)  # fmt: skip
_LLAMA_COUNTERS = (
    "tokens_predicted", "tokens_predicted_seconds", "prompt_tokens", "prompt_seconds", "n_decode",
)  # fmt: skip
_WANTED = frozenset(_NODE + _DCGM)
_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def _wanted(name: str) -> bool:
    return name in _WANTED or name.startswith(_LLAMA_PREFIX) or f"{name}_total" in _WANTED


def filter_exposition(text: str) -> str:
    """Only the lines (samples, ``# HELP``/``# TYPE``) of the metrics read here."""
    kept = []
    for line in text.splitlines():
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE") and _wanted(parts[2]):
                kept.append(line)
            continue
        m = _NAME.match(line)
        if m and _wanted(m.group()):
            kept.append(line)
    return "\n".join(kept) + "\n"


def _base(name: str) -> str:
    return name.removesuffix("_total")


def parse(text: str) -> tuple[dict[str, float], dict[str, Any]]:
    """Flat values and descriptive facts of one exposition page.

    Values: ``cpu_busy_s``/``cpu_total_s`` (summed over CPUs), ``mem_total_b``,
    ``mem_available_b``, ``load1``, ``gpu.<index>.<util|fb_used|fb_free|power|energy_mj|temp|
    sm_clock|mem_clock>`` and ``llama.<name>`` for the llama.cpp metrics. Facts: ``kinds``
    (``node``, ``dcgm``, ``llamacpp``), ``hostname``, ``arch``, ``kernel``, ``cpus``,
    ``gpu_names`` and ``gpu_driver`` when the page says them.
    """
    values: dict[str, float] = {}
    info: dict[str, Any] = {"kinds": []}
    cpus: set[str] = set()
    gpu_names: dict[str, str] = {}
    busy = total = 0.0
    dcgm_keys = {
        "DCGM_FI_DEV_GPU_UTIL": "util", "DCGM_FI_DEV_FB_USED": "fb_used",
        "DCGM_FI_DEV_FB_FREE": "fb_free", "DCGM_FI_DEV_POWER_USAGE": "power",
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": "energy_mj", "DCGM_FI_DEV_GPU_TEMP": "temp",
        "DCGM_FI_DEV_SM_CLOCK": "sm_clock", "DCGM_FI_DEV_MEM_CLOCK": "mem_clock",
    }  # fmt: skip

    def kind(name: str) -> None:
        if name not in info["kinds"]:
            info["kinds"].append(name)

    for family in text_string_to_metric_families(filter_exposition(text)):
        for sample in family.samples:
            name, labels, value = _base(sample.name), sample.labels, float(sample.value)
            if name == "node_cpu_seconds":
                kind("node")
                cpus.add(labels.get("cpu", ""))
                total += value
                if labels.get("mode") not in ("idle", "iowait"):
                    busy += value
            elif name == "node_memory_MemTotal_bytes":
                values["mem_total_b"] = value
            elif name == "node_memory_MemAvailable_bytes":
                values["mem_available_b"] = value
            elif name == "node_load1":
                values["load1"] = value
            elif name == "node_uname_info":
                kind("node")
                info.update(
                    hostname=labels.get("nodename"),
                    arch=labels.get("machine"),
                    kernel=labels.get("release"),
                )
            elif name in dcgm_keys or f"{name}_total" in dcgm_keys:
                kind("dcgm")
                key = dcgm_keys.get(name) or dcgm_keys[f"{name}_total"]
                gpu = labels.get("gpu", "0")
                values[f"gpu.{gpu}.{key}"] = value
                if labels.get("modelName"):
                    gpu_names[gpu] = labels["modelName"]
                if labels.get("DCGM_FI_DRIVER_VERSION"):
                    info["gpu_driver"] = labels["DCGM_FI_DRIVER_VERSION"]
                if labels.get("Hostname") and not info.get("hostname"):
                    info["hostname"] = labels["Hostname"]
            elif name.startswith(_LLAMA_PREFIX):
                kind("llamacpp")
                values[f"llama.{_base(name.removeprefix(_LLAMA_PREFIX))}"] = value
    if cpus:
        values["cpu_busy_s"], values["cpu_total_s"] = busy, total
        info["cpus"] = len(cpus)
    if gpu_names:
        info["gpu_names"] = {int(k) if k.isdigit() else k: v for k, v in gpu_names.items()}
    return values, info


@dataclass(frozen=True, slots=True)
class Scrape:
    """One page, read at ``t_ns`` (this machine's ``perf_counter_ns``, mid-request)."""

    t_ns: int
    values: dict[str, float]
    info: dict[str, Any] = field(default_factory=dict)


def _stats(values: Sequence[float | None], digits: int = 3) -> dict[str, float] | None:
    known = [v for v in values if v is not None]
    if not known:
        return None
    return {"mean": round(sum(known) / len(known), digits), "max": round(max(known), digits)}


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _rate_pct(a: Scrape, b: Scrape) -> float | None:
    """CPU busy % between two node_exporter pages."""
    try:
        d_total = b.values["cpu_total_s"] - a.values["cpu_total_s"]
        d_busy = b.values["cpu_busy_s"] - a.values["cpu_busy_s"]
    except KeyError:
        return None
    if d_total <= 0:
        return None
    return min(100.0, max(0.0, 100.0 * d_busy / d_total))


def host_of(url_or_host: str | None) -> str | None:
    """The host name of a URL, ``host:port`` or bare host (lower case), for matching sources."""
    if not url_or_host:
        return None
    text = url_or_host if "//" in url_or_host else f"//{url_or_host}"
    try:
        return (urlsplit(text).hostname or "").lower() or None
    except ValueError:
        return None


class RemoteSource:
    """One Prometheus endpoint scraped by its own daemon thread into a ring buffer.

    ``host`` (optional) ties it to the model host it describes: it is then only attached to
    runs against that host (suite ``[telemetry_urls]`` tables); ``None`` attaches it to every run.
    """

    def __init__(
        self,
        url: str,
        host: str | None = None,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.url = url
        self.host = host
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._ring: deque[Scrape] = deque(maxlen=int(RING_SECONDS / interval_s) + 2)
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None  # the last failure's sentence; None after a success
        self._error_ns = 0  # when it failed (perf_counter_ns)
        self._logged = False
        self.info: dict[str, Any] = {}

    # -- control ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"llmbench-scrape {self.url}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=self.timeout_s + 2)
        self._thread = None

    def poke(self) -> None:
        """Scrape now (the start of a run), without waiting for it."""
        self._wake.set()

    def scrape_after(self, t_ns: int) -> bool:
        """Wait (at most the request timeout plus a little) for a scrape taken after ``t_ns``,
        so a run's end is bracketed; at once ``False`` when the source is failing."""
        with self._cond:
            if self._ring and self._ring[-1].t_ns >= t_ns:
                return True
            if self.error is not None:
                return False
        if not (self._thread and self._thread.is_alive()):
            return False
        self._wake.set()
        deadline = time.monotonic() + self.timeout_s + 1.0
        with self._cond:
            while not (self._ring and self._ring[-1].t_ns >= t_ns):
                if self.error is not None and self._error_ns >= t_ns:
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    # -- the thread ------------------------------------------------------------------------
    def _run(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            self.scrape()
            next_t += self.interval_s
            now = time.monotonic()
            if next_t <= now:
                next_t = now + self.interval_s
            self._wake.wait(max(0.0, next_t - now))
            if self._wake.is_set():
                self._wake.clear()
                next_t = time.monotonic()  # woken for an edge: scrape now, then on the grid

    def fetch(self) -> str:
        request = urllib.request.Request(
            self.url, headers={"Accept": "text/plain;version=0.0.4", "User-Agent": "llmbench"}
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:
            data = reply.read(MAX_BYTES + 1)
            charset = reply.headers.get_content_charset() or "utf-8"
        if len(data) > MAX_BYTES:
            raise ValueError(f"the page is larger than {MAX_BYTES // MIB} MiB")
        return data.decode(charset, "replace")

    def scrape(self) -> Scrape | None:
        """One request; a failure is remembered as ``error`` (a sentence), never raised."""
        before = time.perf_counter_ns()
        try:
            text = self.fetch()
            after = time.perf_counter_ns()
            values, info = parse(text)
        except Exception as exc:
            self._fail(exc)
            return None
        scrape = Scrape((before + after) // 2, values, info)
        with self._cond:
            self.error, self.info = None, info or self.info
            self._ring.append(scrape)
            self._cond.notify_all()
        return scrape

    def _fail(self, exc: BaseException) -> None:
        if isinstance(exc, urllib.error.HTTPError):
            reason = f"HTTP {exc.code} {exc.reason}"
        elif isinstance(exc, urllib.error.URLError):
            reason = str(getattr(exc.reason, "strerror", None) or exc.reason)
        elif isinstance(exc, TimeoutError):
            reason = f"no answer within {self.timeout_s:g} s"
        elif isinstance(exc, ValueError):
            reason = f"not a Prometheus page ({exc})"
        else:
            reason = str(exc) or type(exc).__name__
        with self._cond:
            self.error = f"cannot scrape {self.url}: {reason}"
            self._error_ns = time.perf_counter_ns()
            self._cond.notify_all()
        if not self._logged:
            log.warning("%s", self.error)
            self._logged = True

    # -- reads -----------------------------------------------------------------------------
    def scrapes(self) -> list[Scrape]:
        with self._cond:
            return list(self._ring)

    def window(self, t0_ns: int, t1_ns: int) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The run's summary and series from this source (see ``summarize``)."""
        return summarize(self.url, self.scrapes(), t0_ns, t1_ns, error=self.error)


def summarize(
    url: str, ring: Sequence[Scrape], t0_ns: int, t1_ns: int, *, error: str | None = None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Summary and series of one source over ``[t0, t1]``, like the local ``TelemetryHub``.

    Gauges and rates use the scrapes inside the window (each rate is the interval ending at its
    scrape), or the first one after it for a run shorter than an interval; counters (energy,
    tokens) grow from ``t0`` to ``t1`` exactly, interpolated between the scrapes around each edge.
    With no scrape at all, the summary is ``{"url", "error"}``.
    """
    ring = sorted(ring, key=lambda s: s.t_ns)
    inside = [s for s in ring if t0_ns <= s.t_ns <= t1_ns] or [
        s for s in ring if s.t_ns > t1_ns
    ][:1]
    if not inside:
        return {"url": url, "error": error or f"no page from {url} during the run"}, None
    previous = {id(b): a for a, b in itertools.pairwise(ring)}
    times = [(s.t_ns - t0_ns) / 1e9 for s in ring]
    end = (t1_ns - t0_ns) / 1e9
    info = next((s.info for s in reversed(inside) if s.info), {})

    def gauge(key: str, scale: float = 1.0) -> list[float | None]:
        return [s.values[key] / scale if key in s.values else None for s in inside]

    def growth(key: str, scale: float = 1.0) -> float | None:
        points = [(t, s.values[key]) for t, s in zip(times, ring, strict=True) if key in s.values]
        delta = counter_between(points, 0.0, end)
        return None if delta is None else delta / scale

    summary: dict[str, Any] = {"url": url, "kinds": info.get("kinds", []), "scrapes": len(inside)}
    series: dict[str, Any] = {"url": url, "t_s": [round((s.t_ns - t0_ns) / 1e9, 4) for s in inside]}
    if error and inside[-1].t_ns < t1_ns:
        summary["error"] = error  # it answered during the run, then stopped
    if "node" in summary["kinds"]:
        cpu = [_rate_pct(previous[id(s)], s) if id(s) in previous else None for s in inside]
        used = [
            (s.values["mem_total_b"] - s.values["mem_available_b"]) / MIB
            if "mem_total_b" in s.values and "mem_available_b" in s.values
            else None
            for s in inside
        ]
        summary["node"] = {
            "cpu_pct": _stats(cpu),
            "ram_used_mb": _stats(used),
            "ram_total_mb": _r(inside[-1].values.get("mem_total_b", 0) / MIB) or None,
            "load1": _stats(gauge("load1")),
        }
        series.update(cpu_pct=[_r(v) for v in cpu], ram_used_mb=[_r(v) for v in used])
    gpus = sorted({k.split(".")[1] for s in inside for k in s.values if k.startswith("gpu.")})
    if gpus:
        summary["gpus"], series["gpus"] = [], []
        names = info.get("gpu_names", {})
        for gpu in gpus:
            def key(name: str, gpu: str = gpu) -> str:
                return f"gpu.{gpu}.{name}"

            energy = growth(key("energy_mj"), 1000.0)
            index: Any = int(gpu) if gpu.isdigit() else gpu
            summary["gpus"].append({
                "index": index,
                "name": names.get(index),
                "util_pct": _stats(gauge(key("util"))),
                "mem_used_mb": _stats(gauge(key("fb_used"))),
                "power_w": _stats(gauge(key("power"))),
                "energy_j": _r(energy),
                "energy_source": "counter" if energy is not None else None,
                "temp_c": _stats(gauge(key("temp"))),
                "sm_clock_mhz": _stats(gauge(key("sm_clock"))),
            })  # fmt: skip
            series["gpus"].append({
                "index": index,
                "util_pct": [_r(v) for v in gauge(key("util"))],
                "mem_used_mb": [_r(v) for v in gauge(key("fb_used"))],
                "power_w": [_r(v) for v in gauge(key("power"))],
            })  # fmt: skip
    if "llamacpp" in summary["kinds"]:
        llama: dict[str, Any] = {}
        for name in _LLAMA_GAUGES:
            if any(f"llama.{name}" in s.values for s in inside):
                llama[name] = _stats(gauge(f"llama.{name}"), 5)
                series[name] = [_r(v, 4) for v in gauge(f"llama.{name}")]
        for name in _LLAMA_COUNTERS:
            llama[f"{name}_delta"] = _r(growth(f"llama.{name}"), 3)
        tokens = llama.get("tokens_predicted_delta")
        seconds = llama.get("tokens_predicted_seconds_delta")
        llama["decode_tok_s"] = _r(tokens / seconds) if tokens and seconds else None
        summary["llamacpp"] = llama
    facts = ("hostname", "arch", "kernel", "cpus", "gpu_driver")
    machine = {k: info[k] for k in facts if k in info}
    if machine:
        if summary.get("node", {}).get("ram_total_mb"):
            machine["ram_mb"] = round(summary["node"]["ram_total_mb"])
        if info.get("gpu_names"):
            machine["gpus"] = [info["gpu_names"][k] for k in sorted(info["gpu_names"], key=str)]
        summary["machine"] = machine
    return summary, series


class RemoteTelemetry:
    """Every configured source; ``for_host`` picks the ones that describe a run's host."""

    def __init__(
        self,
        urls: Iterable[str] | dict[str, str | None],
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        pairs = urls.items() if isinstance(urls, dict) else ((u, None) for u in urls)
        self.sources = [
            RemoteSource(url, host, interval_s=interval_s, timeout_s=timeout_s)
            for url, host in dict(pairs).items()
        ]

    def __bool__(self) -> bool:
        return bool(self.sources)

    def start(self) -> None:
        for source in self.sources:
            source.start()

    def stop(self) -> None:
        for source in self.sources:
            source.stop()

    def for_host(self, host: str | None) -> list[RemoteSource]:
        """Sources for a run against ``host``: untied ones, and those tied to that host name."""
        name = host_of(host)
        return [s for s in self.sources if s.host is None or host_of(s.host) == name]

    def poke(self, host: str | None) -> None:
        for source in self.for_host(host):
            source.poke()

    def window(
        self, host: str | None, t0_ns: int, t1_ns: int
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Summaries and series of the run's sources; waits (briefly) for a scrape after t1."""
        sources = self.for_host(host)
        for source in sources:
            source.scrape_after(t1_ns)
        summaries, series = [], []
        for source in sources:
            summary, points = source.window(t0_ns, t1_ns)
            summaries.append(summary)
            if points is not None:
                series.append(points)
        return summaries, series
