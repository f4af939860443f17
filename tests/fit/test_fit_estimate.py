"""The fit estimate's arithmetic on known architectures, and its verdicts on machines of a given
size (the machine is data here: free RAM and GPU memory are inputs of the estimate).

KV-cache figures are the published sizes of these layouts (Llama-3-8B: 32 layers × 8 KV heads ×
128 × 2 (K and V) × 2 bytes = 128 KiB per token), computed independently in each test.
"""

from __future__ import annotations

import json

import pytest

from llmbench_tui.commands import fit as fit_command
from llmbench_tui.fit.estimate import GPU_MARGIN, RAM_MARGIN, decode_bytes, estimate
from llmbench_tui.fit.machine import Gpu, Machine
from llmbench_tui.fit.memory import CacheConfig, kv_bytes, kv_bytes_per_token
from llmbench_tui.fit.shape import ShapeError, from_metadata
from llmbench_tui.fit.sources import given_shape

MIB = 1024 * 1024
GIB = 1024 * MIB


def llama3_8b(**extra):
    meta = {
        "general.architecture": "llama",
        "llama.block_count": 32,
        "llama.embedding_length": 4096,
        "llama.attention.head_count": 32,
        "llama.attention.head_count_kv": 8,
        "llama.context_length": 8192,
        "llama.vocab_size": 128256,
        "llama.feed_forward_length": 14336,
        **extra,
    }
    return from_metadata(meta, name="llama3-8b", weight_bytes=4_900_000_000, source="given")


def machine(ram: int, gpu: int | None = None) -> Machine:
    gpus = [Gpu(0, "test GPU", gpu, gpu, 1000.0)] if gpu is not None else []
    return Machine(ram, ram, 20.0, "calibration", gpus)


def test_kv_bytes_of_a_gqa_model_for_each_cache_type() -> None:
    shape = llama3_8b()
    per_token = 32 * 8 * 128  # values per token for K (and as many for V)
    assert kv_bytes(shape, 4096, CacheConfig()) == 4096 * per_token * 2 * 2 == 512 * MIB
    assert kv_bytes(shape, 4096, CacheConfig("q8_0", "q8_0")) == 4096 * per_token * 2 * 34 // 32
    q4_k = 4096 * per_token * 18 // 32  # q4_0: 18 bytes per block of 32
    assert kv_bytes(shape, 4096, CacheConfig("q4_0", "f16")) == q4_k + 4096 * per_token * 2
    assert kv_bytes_per_token(shape, CacheConfig()) == per_token * 4
    # The context is padded to whole 256-cell steps, as llama.cpp allocates it.
    assert kv_bytes(shape, 4000, CacheConfig()) == kv_bytes(shape, 4096, CacheConfig())


def test_head_size_and_kv_heads_come_from_the_keys_when_given() -> None:
    shape = llama3_8b(**{"llama.attention.key_length": 256, "llama.attention.value_length": 128})
    assert kv_bytes(shape, 256, CacheConfig()) == 256 * 32 * 8 * (256 + 128) * 2


def test_sliding_window_layers_keep_their_window_unless_swa_full() -> None:
    meta = {
        "general.architecture": "gemma3",
        "gemma3.block_count": 12,
        "gemma3.embedding_length": 1152,
        "gemma3.attention.head_count": 4,
        "gemma3.attention.head_count_kv": 1,
        "gemma3.attention.key_length": 256,
        "gemma3.attention.value_length": 256,
        "gemma3.attention.sliding_window": 512,
        "gemma3.context_length": 32768,
    }
    shape = from_metadata(meta, name="g", weight_bytes=10**9, source="given")
    # gemma3's pattern: 5 sliding-window layers, then one global layer.
    assert shape.swa_layers == [True] * 5 + [False] + [True] * 5 + [False]
    row = 256 * 1 * 2  # one KV head of 256 values, f16
    small = CacheConfig(swa_full=False)
    window = 512 + 512  # n_swa + n_ubatch, already a multiple of 256
    assert kv_bytes(shape, 8192, small) == 2 * row * (10 * window + 2 * 8192)
    assert kv_bytes(shape, 8192, CacheConfig()) == 2 * row * 12 * 8192
    # A file's own pattern (an array of flags) wins over the architecture's default.
    meta["gemma3.attention.sliding_window_pattern"] = [True, False] * 6
    assert from_metadata(meta, name="g", weight_bytes=1, source="given").swa_layers[:3] == [
        True,
        False,
        True,
    ]


def test_layers_without_attention_have_no_cache() -> None:
    meta = {
        "general.architecture": "lfm2",
        "lfm2.block_count": 4,
        "lfm2.embedding_length": 1024,
        "lfm2.attention.head_count": 16,
        "lfm2.attention.head_count_kv": [0, 8, 0, 8],  # two recurrent (conv) layers
    }
    shape = from_metadata(meta, name="h", weight_bytes=10**8, source="given")
    assert kv_bytes(shape, 256, CacheConfig()) == 2 * 256 * 8 * 64 * 2 * 2


def test_missing_keys_are_named() -> None:
    with pytest.raises(ShapeError, match="architecture"):
        from_metadata({}, name="x", weight_bytes=1, source="given")
    with pytest.raises(ShapeError, match="layer count"):
        from_metadata({"general.architecture": "llama"}, name="x", weight_bytes=1, source="given")
    with pytest.raises(ShapeError, match="needs layers"):
        given_shape("arch=llama,embd=4096,heads=32,size=4G", "x")


def test_verdicts_follow_the_memory_there_is() -> None:
    shape = llama3_8b()
    at = 4096
    cpu = estimate(shape, machine(64 * GIB), at)
    assert cpu.verdict == "cpu" and cpu.gpu_layers == 0
    assert cpu.ram_bytes >= shape.weight_bytes + 512 * MIB
    gpu = estimate(shape, machine(64 * GIB, 24 * GIB), at)
    assert gpu.verdict == "gpu" and gpu.gpu_layers == 32
    partial = estimate(shape, machine(64 * GIB, 3 * GIB), at)
    assert partial.verdict == "partial" and 0 < partial.gpu_layers < 32
    assert partial.gpu_bytes + GPU_MARGIN <= 3 * GIB
    nothing = estimate(shape, machine(2 * GIB), at)
    assert nothing.verdict == "none"
    assert "does not fit" in nothing.sentence()
    assert f"{partial.gpu_layers}/32 layers" in partial.sentence()


def test_the_largest_context_fits_and_one_step_more_does_not() -> None:
    shape = llama3_8b(**{"llama.context_length": 131072})
    box = machine(8 * GIB)
    best = estimate(shape, box, 4096).max_ctx["cpu"]
    assert best is not None and 4096 < best < 131072
    assert estimate(shape, box, best).verdict == "cpu"
    assert estimate(shape, box, best + 256).verdict == "none"
    need = estimate(shape, box, best).ram_bytes
    assert need + RAM_MARGIN <= 8 * GIB


def test_decode_ceiling_is_bandwidth_over_bytes_read() -> None:
    shape = llama3_8b()
    fit = estimate(shape, machine(64 * GIB), 4096)
    assert fit.decode_ceiling_tok_s == pytest.approx(20e9 / decode_bytes(shape))
    assert fit.bandwidth_source == "calibration"
    on_gpu = estimate(shape, machine(64 * GIB, 24 * GIB), 4096)
    assert on_gpu.decode_ceiling_tok_s == pytest.approx(1000e9 / decode_bytes(shape))


def test_fit_command_with_a_given_shape(capsys) -> None:
    args = fit_command.build_parser().parse_args(
        [
            "--given",
            "arch=llama,layers=32,embd=4096,heads=32,kv_heads=8,size=4.9G,ctx=8192",
            "--ctx",
            "4096",
            "--json",
        ]
    )
    assert fit_command.main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    (model,) = doc["models"]
    assert model["kv_bytes"] == 512 * MIB and model["estimate"] is True
    assert model["verdict"] in ("gpu", "partial", "cpu", "none")


def test_fit_command_says_what_is_wrong(capsys) -> None:
    args = fit_command.build_parser().parse_args(["--given", "arch=llama,layers=x"])
    assert fit_command.main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("llmbench fit: ") and err.count("\n") == 1
    assert "Traceback" not in err
