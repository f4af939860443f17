"""The GGUF header reader (``gguf`` package, bounded): real files, truncated and hostile ones.

Every damaged file must be refused with one sentence (``BackendError``), quickly, and never make
the reader walk past the end of the file (numpy slices past the end are silently short, so a
hostile count would otherwise loop for ever).
"""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest

from llmbench_tui.backends.base import BackendError
from llmbench_tui.backends.gguf_meta import read_header

U32, F32, STRING, ARRAY, U64 = 4, 6, 8, 9, 10


def s(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def kv(key: str, vtype: int, payload: bytes) -> bytes:
    return s(key) + struct.pack("<I", vtype) + payload


def gguf(
    kvs: list[bytes],
    tensors: list[tuple[str, list[int], int, int]] = (),  # type: ignore[assignment]
    data: bytes | None = None,
    n_kv: int | None = None,
    n_tensors: int | None = None,
) -> bytes:
    """A GGUF v3 file; tensors are (name, dims, ggml type, offset); ``data`` after the padding."""
    n_t = len(tensors) if n_tensors is None else n_tensors
    out = b"GGUF" + struct.pack("<IQQ", 3, n_t, len(kvs) if n_kv is None else n_kv)
    out += b"".join(kvs)
    for name, dims, gtype, offset in tensors:
        out += s(name) + struct.pack(f"<I{len(dims)}Q", len(dims), *dims)
        out += struct.pack("<IQ", gtype, offset)
    if data is not None:
        out += b"\0" * (-len(out) % 32) + data
    return out


def valid_file() -> bytes:
    vocab = struct.pack("<IQ", STRING, 3) + s("a") + s("bb") + s("ccc")
    return gguf(
        [
            kv("general.architecture", STRING, s("llama")),
            kv("llama.block_count", U32, struct.pack("<I", 2)),
            kv("llama.context_length", U32, struct.pack("<I", 2048)),
            kv("tokenizer.ggml.tokens", ARRAY, vocab),
            kv("llama.attention.head_count_kv", ARRAY, struct.pack("<IQ2I", U32, 2, 2, 0)),
            kv("llama.rope.freq_base", F32, struct.pack("<f", 10000.0)),
        ],
        [("token_embd.weight", [8, 3], 0, 0), ("blk.0.attn_q.weight", [8, 8], 1, 96)],
        data=b"\0" * (96 + 128),
    )


def write(tmp_path: Path, data: bytes, name: str = "m.gguf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_valid_file_gives_metadata_and_the_tensor_table(tmp_path: Path) -> None:
    header = read_header(write(tmp_path, valid_file()))
    assert header.architecture == "llama"
    assert header.context_length == 2048
    assert header.metadata["llama.attention.head_count_kv"] == [2, 0]  # per-layer array
    assert header.metadata["llama.rope.freq_base"] == pytest.approx(10000.0)
    assert "tokenizer.ggml.tokens" not in header.metadata  # stepped over, not decoded
    assert [(t.name, t.shape, t.n_bytes) for t in header.tensors] == [
        ("token_embd.weight", (8, 3), 96),  # F32: 4 bytes each
        ("blk.0.attn_q.weight", (8, 8), 128),  # F16: 2 bytes each
    ]
    assert header.parameter_count == 24 + 64
    assert header.weight_bytes == 224


def test_every_truncation_is_refused_with_a_sentence(tmp_path: Path) -> None:
    data = valid_file()
    for cut in range(len(data)):
        path = write(tmp_path, data[:cut])
        with pytest.raises(BackendError) as err:
            read_header(path)
        message = str(err.value)
        assert str(path) in message and "\n" not in message, cut
        assert "GGUF" in message, cut


@pytest.mark.parametrize(
    ("what", "data"),
    [
        ("huge array of bytes", gguf([kv("x", ARRAY, struct.pack("<IQ", 0, 2**63))])),
        ("huge string", gguf([kv("general.name", STRING, struct.pack("<Q", 2**62))])),
        (
            "huge skipped string array",
            gguf([kv("tokenizer.ggml.tokens", ARRAY, struct.pack("<IQ", STRING, 2**60))]),
        ),
        ("huge key/value count", gguf([], n_kv=2**64 - 1)),
        ("huge tensor count", gguf([], n_tensors=2**40)),
        ("huge dimension count", gguf([], [("t", [1], 0, 0)])[:-20] + struct.pack("<I", 2**31)),
        ("tensor past the end", gguf([], [("t", [1024, 1024], 0, 0)], data=b"\0" * 64)),
        ("tensor offset past the end", gguf([], [("t", [4], 0, 2**62)], data=b"\0" * 64)),
        ("unknown tensor type", gguf([], [("t", [4], 999, 0)], data=b"\0" * 64)),
        ("unknown value type", gguf([kv("x", 77, b"\0" * 8)])),
        ("bad alignment", gguf([kv("general.alignment", U32, struct.pack("<I", 3))])),
        ("not UTF-8 key", gguf([b"\x02\0\0\0\0\0\0\0\xff\xfe" + struct.pack("<II", U32, 1)])),
        ("duplicate key", gguf([kv("a", U32, b"\1\0\0\0"), kv("a", U32, b"\1\0\0\0")])),
        ("wrong version", b"GGUF" + struct.pack("<IQQ", 99, 0, 0)),
        ("empty", b""),
    ],
)
def test_hostile_files_are_refused_quickly(tmp_path: Path, what: str, data: bytes) -> None:
    path = write(tmp_path, data)
    t0 = time.perf_counter()
    with pytest.raises(BackendError) as err:
        read_header(path)
    assert time.perf_counter() - t0 < 5, what  # bounded by the file's size, not its counts
    assert "\n" not in str(err.value)


def test_the_embedded_model(smollm_path: Path) -> None:
    header = read_header(smollm_path)
    assert header.architecture == "llama"
    assert header.quantization == "Q4_1"
    assert header.metadata["llama.block_count"] == 30
    # The tensor data is what follows the header: the weights are the file less a small header.
    assert 0 < smollm_path.stat().st_size - header.weight_bytes < 4 * 1024 * 1024
