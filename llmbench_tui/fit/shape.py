"""A model's shape as llama.cpp sees it: what the memory and speed estimates are computed from.

The same key names serve every source: a GGUF file's metadata, Ollama's ``/api/show``
``model_info`` (Ollama copies the GGUF key/values there) and a shape typed by hand for a model
not downloaded yet. The rules follow llama.cpp's ``llama_hparams`` (``src/llama-hparams.cpp``,
``src/llama-model.cpp``): per-layer head counts may be arrays, head sizes default to
``n_embd / n_head``, a KV head count of 0 marks a layer without attention (recurrent layers of
hybrid models), and sliding-window layers follow the file's ``sliding_window_pattern`` or the
architecture's own default pattern.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Architectures whose every layer is recurrent: a fixed-size state, no KV cache that grows.
RECURRENT = frozenset({"mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7"})

# llama.cpp's default sliding-window patterns (``load_swa_pattern(ml, n, dense_first)`` in
# ``src/models/*.cpp``), used when the file carries no ``sliding_window_pattern`` key.
SWA_PATTERNS: dict[str, tuple[int, bool]] = {
    "gemma2": (2, False),
    "gemma3": (6, False),
    "gemma3n": (5, False),
    "gemma-embedding": (6, False),
    "cohere2": (4, False),
    "exaone4": (4, False),
    "gpt-oss": (2, False),
    "llama4": (4, False),
    "olmo2": (4, False),
    "afmoe": (4, False),
    "smallthinker": (4, True),
    "plamo3": (8, False),
}


class ShapeError(ValueError):
    """The metadata does not say enough to size the model; the message says what is missing."""


@dataclass(slots=True)
class ModelShape:
    """Everything the fit estimate needs about one model."""

    name: str
    architecture: str
    n_layer: int
    n_embd: int
    n_head: list[int]
    n_head_kv: list[int]
    head_k: int
    head_v: int
    n_vocab: int
    n_ctx_train: int | None
    weight_bytes: int
    # Bytes of each repeating block (``blk.N.*``), of the input embedding and of the output head.
    layer_bytes: list[int] = field(default_factory=list)
    embd_bytes: int = 0
    output_bytes: int = 0
    tied_output: bool = False  # no output.weight: the output head reads token_embd each token
    n_swa: int = 0
    swa_layers: list[bool] = field(default_factory=list)
    kv_lora_rank: int = 0  # MLA (DeepSeek-style): one compressed K row per layer, no V
    n_rot: int = 0
    n_ff: int = 0
    expert_count: int = 0
    expert_used: int = 0
    expert_bytes: int = 0  # bytes of the routed-expert tensors (MoE), read only in part
    vocab_entries: int = 0  # tokens + BPE merges: llama.cpp's vocabulary tables grow with them
    source: str = ""  # where the shape came from: "gguf", "ollama", "given"
    notes: list[str] = field(default_factory=list)

    @property
    def recurrent(self) -> bool:
        return self.architecture in RECURRENT

    def has_kv(self, il: int) -> bool:
        return not self.recurrent and self.n_head_kv[il] > 0

    def is_swa(self, il: int) -> bool:
        return self.n_swa > 0 and il < len(self.swa_layers) and self.swa_layers[il]


def _per_layer(value: Any, n_layer: int, what: str) -> list[int]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        values = [int(v) for v in value]
        if len(values) != n_layer:
            raise ShapeError(f"{what} lists {len(values)} layers, the model has {n_layer}")
        return values
    return [int(value)] * n_layer


def _swa_layers(meta: Mapping[str, Any], arch: str, n_layer: int) -> list[bool]:
    pattern = meta.get(f"{arch}.attention.sliding_window_pattern")
    if isinstance(pattern, Sequence) and not isinstance(pattern, str):
        flags = [bool(v) for v in pattern]
        return (flags + [False] * n_layer)[:n_layer]
    n, dense_first = SWA_PATTERNS.get(arch, (0, False))
    if isinstance(pattern, int):
        n = pattern
    if n == 0:
        return [True] * n_layer if arch in SWA_PATTERNS else [False] * n_layer
    if dense_first:
        return [il % n != 0 for il in range(n_layer)]
    return [il % n < n - 1 for il in range(n_layer)]


def from_metadata(
    meta: Mapping[str, Any],
    *,
    name: str,
    weight_bytes: int,
    tensors: Sequence[tuple[str, tuple[int, ...], int]] = (),
    source: str,
    vocab_entries: int = 0,
) -> ModelShape:
    """The shape from GGUF-style key/values and, when known, the tensor table
    (``(name, shape, bytes)``); without tensors the weights are spread evenly over the layers."""
    arch = meta.get("general.architecture")
    if not arch:
        raise ShapeError("the model does not say its architecture (general.architecture)")

    def key(suffix: str, default: Any = None) -> Any:
        return meta.get(f"{arch}.{suffix}", default)

    n_layer, n_embd = key("block_count"), key("embedding_length")
    if not n_layer or not n_embd:
        raise ShapeError(f"the {arch} model does not say its layer count and embedding size")
    n_layer, n_embd = int(n_layer), int(n_embd)
    heads = key("attention.head_count", 0)
    n_head = _per_layer(heads, n_layer, "attention.head_count")
    n_head_kv = _per_layer(key("attention.head_count_kv", heads), n_layer, "head_count_kv")
    max_head = max(n_head) if n_head else 0
    default_head = n_embd // max_head if max_head else 0
    shape = ModelShape(
        name=name,
        architecture=str(arch),
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_k=int(key("attention.key_length", default_head) or 0),
        head_v=int(key("attention.value_length", default_head) or 0),
        n_vocab=int(key("vocab_size", 0) or 0),
        n_ctx_train=int(c) if (c := key("context_length")) else None,
        weight_bytes=int(weight_bytes),
        n_swa=int(key("attention.sliding_window", 0) or 0),
        kv_lora_rank=int(key("attention.kv_lora_rank", 0) or 0),
        n_rot=int(key("rope.dimension_count", 0) or 0),
        n_ff=_first_int(key("feed_forward_length", 0)),
        expert_count=int(key("expert_count", 0) or 0),
        expert_used=int(key("expert_used_count", 0) or 0),
        vocab_entries=vocab_entries,
        source=source,
    )
    if shape.n_swa:
        shape.swa_layers = _swa_layers(meta, shape.architecture, n_layer)
    if shape.recurrent:
        shape.notes.append("recurrent model: its fixed-size state is not counted as KV cache")
    _split_weights(shape, tensors)
    if not shape.vocab_entries:  # not said (Ollama): about as many merges as tokens
        shape.vocab_entries = 2 * shape.n_vocab
    return shape


def _first_int(value: Any) -> int:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return max((int(v) for v in value), default=0)
    return int(value or 0)


def _split_weights(shape: ModelShape, tensors: Sequence[tuple[str, tuple[int, ...], int]]) -> None:
    """Per-layer, embedding and output bytes from the tensor table (or an even split)."""
    layers = [0] * shape.n_layer
    tied = True
    for name, dims, n_bytes in tensors:
        if name.startswith("blk."):
            index = name.split(".", 2)[1]
            if index.isdigit() and int(index) < shape.n_layer:
                layers[int(index)] += n_bytes
                if "_exps." in name:
                    shape.expert_bytes += n_bytes
                continue
        if name == "token_embd.weight":
            shape.embd_bytes += n_bytes
            if not shape.n_vocab and len(dims) >= 2:
                shape.n_vocab = dims[1]
        elif name.startswith("output."):
            shape.output_bytes += n_bytes
            tied = tied and name != "output.weight"
        else:
            shape.output_bytes += n_bytes  # norms and other small tensors: counted with the head
    if not tensors:
        layers = [shape.weight_bytes // shape.n_layer] * shape.n_layer
        shape.notes.append("no tensor table: the weights are taken as spread evenly over layers")
    shape.layer_bytes = layers
    shape.tied_output = bool(tensors) and tied and shape.embd_bytes > 0
