"""Will it fit, with how much context, and how fast could it decode: one model against one machine.

Placement follows llama.cpp's ``n_gpu_layers``: with L layers offloaded, the last L repeating
layers, their KV cache and a compute buffer live on the GPU; the output head goes too when every
layer does; the input embedding always stays in RAM. So:

- **gpu** — every layer and the output head fit in the GPUs' free memory (less ``GPU_MARGIN``);
- **partial** — only some layers do (``gpu_layers`` says how many), the rest run from RAM;
- **cpu** — no GPU (or not one layer fits) but RAM holds it all;
- **none** — not even RAM holds it at this context.

For each case the largest context that still fits is found by bisection over 256-token steps
(the cache grows in whole 256-cell steps), up to the context the model was trained for.

The decode ceiling: every generated token streams the weights it uses from memory once (all
repeating layers, the output head — the embedding matrix when the head is tied to it — and, for
mixture-of-experts models, only the routed experts in use), so ``bandwidth / bytes per token`` is
the fastest decode the memory allows. It is a ceiling, not a forecast: real decode also pays for
compute, the KV cache it reads as the context fills, and synchronisation. The prefill rate is
compute-bound and no compute figure of this machine is known, so it is not estimated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from .machine import Machine
from .memory import (
    KV_PAD,
    MIB,
    CacheConfig,
    compute_bytes,
    kv_bytes_per_token,
    kv_layer_bytes,
    output_bytes,
    pad,
    resident_compute_bytes,
    runtime_bytes,
)
from .shape import ModelShape

Verdict = Literal["gpu", "partial", "cpu", "none"]
GPU_MARGIN = 512 * MIB  # CUDA context, cuBLAS workspace and fragmentation: kept free
RAM_MARGIN = 256 * MIB  # the rest of the process and the OS
MAX_CTX = 1 << 20


@dataclass(slots=True)
class Need:
    """Bytes one placement needs on the GPUs and in RAM."""

    gpu: int
    ram: int


@dataclass(slots=True)
class FitEstimate:
    """The estimate for one model at one context size (see the module docstring)."""

    model: str
    n_ctx: int
    verdict: Verdict
    gpu_layers: int
    n_layer: int
    weights_bytes: int
    kv_bytes: int
    kv_bytes_per_token: float
    compute_bytes: int
    total_bytes: int
    gpu_bytes: int
    ram_bytes: int
    max_ctx: dict[str, int | None]
    decode_ceiling_tok_s: float | None
    bytes_per_token: int
    bandwidth_gb_s: float | None
    bandwidth_source: str | None
    source: str
    runtime_bytes: int = 0
    cache: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    shape: ModelShape | None = field(default=None, repr=False)  # not in the JSON
    config: CacheConfig = field(default_factory=CacheConfig, repr=False)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        del out["shape"], out["config"]
        out["estimate"] = True  # every figure here is a prediction, not a measurement
        return out

    def resident_bytes(self, used_tokens: int) -> int:
        """What a process running this model holds in memory (RSS) once ``used_tokens`` of
        context were evaluated: weights, KV cache, llama.cpp's tables and the compute pages
        touched (``memory.resident_compute_bytes``), not the whole reservation."""
        if self.shape is None:
            return self.total_bytes
        touched = resident_compute_bytes(self.shape, used_tokens, self.config)
        return self.total_bytes - self.compute_bytes + min(touched, self.compute_bytes)

    def sentence(self) -> str:
        """The one-line explanation the model picker and ``llmbench fit`` show."""
        mib = self.total_bytes / MIB
        kv = self.kv_bytes / MIB
        where = {
            "gpu": "fits on the GPU",
            "partial": f"fits partly: {self.gpu_layers}/{self.n_layer} layers on the GPU",
            "cpu": "runs on the CPU only",
            "none": "does not fit",
        }[self.verdict]
        best = self.max_ctx.get(self.verdict if self.verdict != "none" else "cpu")
        reach = f", up to {best:,} tokens" if best else ""
        speed = (
            f"; decode ≤ {self.decode_ceiling_tok_s:,.0f} tok/s (estimate)"
            if self.decode_ceiling_tok_s
            else ""
        )
        return (
            f"{where} at {self.n_ctx:,} tokens ({mib:,.0f} MiB: weights "
            f"{self.weights_bytes / MIB:,.0f}, KV {kv:,.1f}, compute "
            f"{self.compute_bytes / MIB:,.0f}, runtime {self.runtime_bytes / MIB:,.0f})"
            f"{reach}{speed}"
        )

    def cell(self) -> str:
        """A short label for a table column."""
        if self.verdict == "partial":
            return f"part {self.gpu_layers}/{self.n_layer}"
        return {"gpu": "GPU", "cpu": "CPU", "none": "no"}[self.verdict]


def _need(shape: ModelShape, n_ctx: int, gpu_layers: int, cfg: CacheConfig) -> Need:
    """Bytes on the GPUs and in RAM with the last ``gpu_layers`` layers offloaded."""
    n = shape.n_layer
    on_gpu = range(n - min(gpu_layers, n), n)
    layer_kv = [kv_layer_bytes(shape, n_ctx, il, cfg) for il in range(n)]
    compute = compute_bytes(shape, n_ctx, cfg)
    gpu = sum(shape.layer_bytes[il] + layer_kv[il] for il in on_gpu)
    head_on_gpu = gpu_layers > n
    if head_on_gpu:
        gpu += shape.output_bytes + (shape.embd_bytes if shape.tied_output else 0)
    if gpu_layers > 0:
        gpu += compute
    on_cpu = range(0, n - len(on_gpu))
    ram = shape.embd_bytes + output_bytes(shape) + runtime_bytes(shape)
    ram += sum(shape.layer_bytes[il] + layer_kv[il] for il in on_cpu)
    if not head_on_gpu:
        ram += shape.output_bytes
    if gpu_layers <= n:  # some work stays on the CPU: it needs its own compute buffer
        ram += compute
    return Need(gpu, ram)


def _fits(need: Need, machine: Machine) -> bool:
    gpu_ok = need.gpu == 0 or need.gpu + GPU_MARGIN <= machine.gpu_free_bytes
    return gpu_ok and need.ram + RAM_MARGIN <= machine.ram_free_bytes


def _best_layers(shape: ModelShape, n_ctx: int, machine: Machine, cfg: CacheConfig) -> int | None:
    """The most layers that fit on the GPUs at ``n_ctx`` (``n_layer + 1``: all and the head),
    or ``None`` when no placement fits at all (0: CPU only)."""
    if not machine.gpus:
        return 0 if _fits(_need(shape, n_ctx, 0, cfg), machine) else None
    for layers in range(shape.n_layer + 1, -1, -1):
        if _fits(_need(shape, n_ctx, layers, cfg), machine):
            return layers
    return None


def _largest_ctx(shape: ModelShape, ok: Any) -> int | None:
    """The largest context (a multiple of 256, up to the trained one) for which ``ok`` holds."""
    top = pad(shape.n_ctx_train) if shape.n_ctx_train else MAX_CTX
    if not ok(KV_PAD):
        return None
    lo, hi = 1, top // KV_PAD  # in steps of 256: ok(lo) holds
    if ok(hi * KV_PAD):
        return hi * KV_PAD
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid * KV_PAD) else (lo, mid)
    return lo * KV_PAD


def decode_bytes(shape: ModelShape) -> int:
    """Weight bytes read to generate one token (module docstring)."""
    read = sum(shape.layer_bytes) + shape.output_bytes
    if shape.tied_output:
        read += shape.embd_bytes
    if shape.expert_bytes and shape.expert_count and shape.expert_used:
        read -= int(shape.expert_bytes * (1 - shape.expert_used / shape.expert_count))
    return read


def estimate(
    shape: ModelShape,
    machine: Machine,
    n_ctx: int,
    cfg: CacheConfig | None = None,
) -> FitEstimate:
    """The fit of ``shape`` on ``machine`` at a context of ``n_ctx`` tokens."""
    cfg = cfg or CacheConfig()
    n = shape.n_layer
    layers = _best_layers(shape, n_ctx, machine, cfg)
    if layers is None:
        verdict: Verdict = "none"
        layers = 0
    elif layers > n:
        verdict = "gpu"
    elif layers > 0:
        verdict = "partial"
    else:
        verdict = "cpu"
    need = _need(shape, n_ctx, layers, cfg)
    kv = sum(kv_layer_bytes(shape, n_ctx, il, cfg) for il in range(n))
    compute = compute_bytes(shape, n_ctx, cfg)

    max_ctx: dict[str, int | None] = {
        "cpu": _largest_ctx(shape, lambda c: _fits(_need(shape, c, 0, cfg), machine)),
        "gpu": None,
        "partial": None,
    }
    if machine.gpus:
        max_ctx["gpu"] = _largest_ctx(shape, lambda c: _fits(_need(shape, c, n + 1, cfg), machine))
        max_ctx["partial"] = _largest_ctx(
            shape, lambda c: (b := _best_layers(shape, c, machine, cfg)) is not None and b > 0
        )

    per_token = decode_bytes(shape)
    bandwidth, bw_source, ceiling = _ceiling(shape, machine, verdict, layers, per_token)
    notes = list(shape.notes)
    if bandwidth is None:
        notes.append("no bandwidth figure: run `llmbench calibrate` for a decode ceiling")
    return FitEstimate(
        model=shape.name,
        n_ctx=pad(n_ctx),
        verdict=verdict,
        gpu_layers=min(layers, n),
        n_layer=n,
        weights_bytes=shape.weight_bytes,
        kv_bytes=kv,
        kv_bytes_per_token=kv_bytes_per_token(shape, cfg),
        compute_bytes=compute,
        total_bytes=shape.weight_bytes + kv + compute + output_bytes(shape) + runtime_bytes(shape),
        gpu_bytes=need.gpu,
        ram_bytes=need.ram,
        max_ctx=max_ctx,
        decode_ceiling_tok_s=ceiling,
        bytes_per_token=per_token,
        bandwidth_gb_s=bandwidth,
        bandwidth_source=bw_source,
        source=shape.source,
        runtime_bytes=runtime_bytes(shape),
        shape=shape,
        config=cfg,
        cache={
            "type_k": cfg.type_k,
            "type_v": cfg.type_v,
            "flash_attn": cfg.flash_attn,
            "swa_full": cfg.swa_full,
            "n_ubatch": cfg.n_ubatch,
        },
        notes=notes,
    )


def _ceiling(
    shape: ModelShape, machine: Machine, verdict: Verdict, layers: int, per_token: int
) -> tuple[float | None, str | None, float | None]:
    """(bandwidth GB/s, its source, decode ceiling tok/s) for the placement chosen."""
    cpu, gpu = machine.cpu_gb_s, machine.gpu_gb_s
    if verdict in ("cpu", "none"):
        if not cpu:
            return None, None, None
        return cpu, machine.cpu_gb_s_source, cpu * 1e9 / per_token
    if verdict == "gpu":
        if not gpu:
            return None, None, None
        return gpu, "nvml", gpu * 1e9 / per_token
    if not (gpu and cpu):
        return None, None, None
    on_gpu = sum(shape.layer_bytes[shape.n_layer - layers :])
    seconds = on_gpu / (gpu * 1e9) + (per_token - on_gpu) / (cpu * 1e9)
    return per_token / seconds / 1e9, f"nvml+{machine.cpu_gb_s_source}", 1.0 / seconds
