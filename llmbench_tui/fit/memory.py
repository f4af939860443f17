"""Bytes a model takes once loaded by llama.cpp: weights, KV cache and compute buffers.

KV cache — exact, as ``llama_kv_cache`` allocates it (``src/llama-kv-cache.cpp``): the context is
padded to a multiple of 256 cells; every layer that has attention gets a K tensor of
``n_embd_k_gqa × cells`` and a V tensor of ``n_embd_v_gqa × cells`` of the cache type, where
``n_embd_k_gqa = head_k × n_head_kv(layer)`` (grouped-query attention: KV heads, not query heads).
A row of a quantized cache type takes ``row / block × block bytes`` (q8_0: 34 bytes per 32 values,
q4_0: 18 per 32). Without flash attention V is stored transposed and every layer's V is padded to
the widest one. Sliding-window layers (``llama_kv_cache_iswa``) get
``pad256(min(cells, n_swa + n_ubatch))`` cells unless the full-size SWA cache is asked for
(``swa_full``, llama.cpp's own default, which llama-cpp-python keeps). MLA models keep one
compressed K row (``kv_lora_rank + n_rot``) per layer and no V.

Compute buffers — an approximation of what ggml's graph allocator reserves for one ubatch of
``n_ubatch`` tokens against the full cache (``llama_context::graph_reserve``). The allocator
reuses memory between operations, so the buffer is the largest set of tensors alive at once:
either the attention of the widest layer — its scores (``n_head × cells × n_ubatch`` floats; the
softmax runs in place), the mask (``cells × n_ubatch`` floats), the V-cache row indices and about
five hidden-state-sized tensors (``n_embd × n_ubatch`` floats: residual, Q, the attention
output...) — or the output head's logits (``n_vocab × n_ubatch`` floats) with three hidden
states, or the feed-forward activations. Flash attention never materialises the scores. Checked
against llama.cpp's own ``compute buffer size`` on the embedded model: exact at 2048, 4096 and
8192 cells, 1.1 % high at 512 and 1024 (docs/fit.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from .shape import ModelShape

KV_PAD = 256  # llama.cpp pads the context (and the SWA cache) to a multiple of 256 cells
DEFAULT_UBATCH = 512
MIB = 1024 * 1024

# Cache types llama.cpp accepts for --cache-type-k/-v, by their command-line names.
CACHE_TYPES = {
    "f32": GGMLQuantizationType.F32,
    "f16": GGMLQuantizationType.F16,
    "bf16": GGMLQuantizationType.BF16,
    "q8_0": GGMLQuantizationType.Q8_0,
    "q4_0": GGMLQuantizationType.Q4_0,
    "q4_1": GGMLQuantizationType.Q4_1,
    "iq4_nl": GGMLQuantizationType.IQ4_NL,
    "q5_0": GGMLQuantizationType.Q5_0,
    "q5_1": GGMLQuantizationType.Q5_1,
}


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """How llama.cpp is asked to build the context (its defaults, as llama-cpp-python uses them)."""

    type_k: str = "f16"
    type_v: str = "f16"
    flash_attn: bool = False
    swa_full: bool = True
    n_ubatch: int = DEFAULT_UBATCH


def pad(n: int, to: int = KV_PAD) -> int:
    return -(-n // to) * to


def row_bytes(cache_type: str, n: int) -> int:
    """``ggml_row_size``: bytes of ``n`` values of a cache type (whole blocks)."""
    try:
        block, size = GGML_QUANT_SIZES[CACHE_TYPES[cache_type]]
    except KeyError:
        raise ValueError(
            f"unknown KV cache type {cache_type!r}; known: {', '.join(CACHE_TYPES)}"
        ) from None
    if n % block:
        raise ValueError(f"a row of {n} values is not a whole number of {cache_type} blocks")
    return n // block * size


def kv_cells(shape: ModelShape, n_ctx: int, il: int, cfg: CacheConfig) -> int:
    """Cells of layer ``il``'s cache for a context of ``n_ctx`` tokens."""
    cells = pad(n_ctx)
    if shape.is_swa(il) and not cfg.swa_full:
        return pad(min(cells, shape.n_swa + min(cfg.n_ubatch, cells)))
    return cells


def kv_layer_bytes(shape: ModelShape, n_ctx: int, il: int, cfg: CacheConfig) -> int:
    """K plus V bytes of one layer (0 for a layer without attention)."""
    if not shape.has_kv(il):
        return 0
    cells = kv_cells(shape, n_ctx, il, cfg)
    if shape.kv_lora_rank:
        return cells * row_bytes(cfg.type_k, shape.kv_lora_rank + shape.n_rot)
    k = row_bytes(cfg.type_k, shape.head_k * shape.n_head_kv[il])
    v_width = shape.head_v * shape.n_head_kv[il]
    if not cfg.flash_attn:  # V transposed: every layer padded to the widest (TAG_V_CACHE_VARIABLE)
        v_width = shape.head_v * max(
            h for il2, h in enumerate(shape.n_head_kv) if shape.has_kv(il2)
        )
    return cells * (k + row_bytes(cfg.type_v, v_width))


def kv_bytes(shape: ModelShape, n_ctx: int, cfg: CacheConfig, layers: range | None = None) -> int:
    """KV cache bytes for ``n_ctx`` tokens over ``layers`` (all of them by default)."""
    return sum(kv_layer_bytes(shape, n_ctx, il, cfg) for il in layers or range(shape.n_layer))


def kv_bytes_per_token(shape: ModelShape, cfg: CacheConfig) -> float:
    """Bytes one more token of context adds (full-attention layers; SWA layers are capped)."""
    big = pad(1 << 20)
    return (kv_bytes(shape, big, cfg) - kv_bytes(shape, big - KV_PAD, cfg)) / KV_PAD


def compute_bytes(shape: ModelShape, n_ctx: int, cfg: CacheConfig) -> int:
    """The compute buffer for one ubatch against the full cache (module docstring)."""
    cells = pad(n_ctx)
    n_ub = min(cfg.n_ubatch, cells)
    n_head = max(shape.n_head) if shape.n_head else 0
    n_kv_head = max(shape.n_head_kv) if shape.n_head_kv else 0
    hidden = shape.n_embd * n_ub * 4
    scores = 0 if cfg.flash_attn else n_head * cells * n_ub * 4
    mask = cells * n_ub * 4
    v_rows = 0 if cfg.flash_attn else n_ub * shape.head_v * n_kv_head * 8  # int64 indices
    attention = scores + mask + v_rows + 5 * hidden
    logits = shape.n_vocab * n_ub * 4 + 3 * hidden
    ffn = 3 * shape.n_ff * n_ub * 4 + 2 * hidden
    return max(attention, logits, ffn)


# llama.cpp's own tables beside the buffers, measured by loading vocabularies alone
# (``vocab_only``: 18.4 MiB for SmolLM2's 49,152 tokens + 48,900 merges, 54.2 MiB for Llama 3's
# 128,256 + 280,147): about 121 bytes per vocabulary entry, plus a fixed part (code pages, graph
# metadata, 7 MiB for the vocabulary's and 4 MiB for the context's).
VOCAB_ENTRY_BYTES = 121
RUNTIME_FIXED = 11 * MIB


def runtime_bytes(shape: ModelShape) -> int:
    """Memory llama.cpp holds besides its buffers: vocabulary tables and fixed overhead."""
    return RUNTIME_FIXED + VOCAB_ENTRY_BYTES * shape.vocab_entries


def resident_compute_bytes(shape: ModelShape, used: int, cfg: CacheConfig) -> int:
    """The part of the compute buffer a run of ``used`` context tokens actually touches.

    The buffer is reserved for the worst case (a full ubatch against the full cache, with logits
    for every token) but the operating system only backs the pages written: a prompt of ``used``
    tokens is evaluated in ubatches against at most ``pad256(used)`` cells, and only the last
    token's logits are computed. Resident memory (RSS) counts these pages, not the reservation.
    """
    cells = pad(max(used, 1))
    n_ub = min(cfg.n_ubatch, used or 1)
    n_head = max(shape.n_head) if shape.n_head else 0
    n_kv_head = max(shape.n_head_kv) if shape.n_head_kv else 0
    hidden = shape.n_embd * n_ub * 4
    scores = 0 if cfg.flash_attn else n_head * cells * n_ub * 4
    v_rows = 0 if cfg.flash_attn else n_ub * shape.head_v * n_kv_head * 8
    attention = scores + cells * n_ub * 4 + v_rows + 5 * hidden
    ffn = 3 * shape.n_ff * n_ub * 4 + 2 * hidden
    return max(attention, ffn, shape.n_vocab * 4 + 3 * hidden)


def output_bytes(shape: ModelShape) -> int:
    """llama.cpp's output buffer: the logits of one token, as reserved at context creation."""
    return shape.n_vocab * 4 + shape.n_embd * 4
