"""The fit estimate against llama.cpp itself, on the embedded SmolLM2 file.

llama.cpp has no call that returns its KV-cache size; with ``verbose=True`` it prints the buffers
it allocated (``llama_kv_cache: size = X MiB (N cells, L layers, ...), K (f16): ..., V (f16):
...``). Each comparison loads the model in a fresh ``python -c`` process (llama-cpp-python,
exactly as the GGUF backend loads it) and reads that line with its own pattern, independent of
the product's log parser.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from llmbench_tui.commands import fit as fit_command
from llmbench_tui.engine.runner import Engine, Plan
from llmbench_tui.schema import ModelSpec, Options, PromptSpec

pytestmark = pytest.mark.slow
MIB = 1024 * 1024

LOAD = """
import sys, llama_cpp
kw = dict(n_ctx=int(sys.argv[2]), n_threads=1, verbose=True, n_gpu_layers=-1)
if sys.argv[3] != "-":
    kw.update(type_k=int(sys.argv[3]), type_v=int(sys.argv[4]), flash_attn=sys.argv[5] == "1")
llama_cpp.Llama(model_path=sys.argv[1], **kw)
"""
KV_LINE = re.compile(
    r"llama_kv_cache: size = +([\d.]+) MiB \( *(\d+) cells, +(\d+) layers.*?"
    r"K \((\w+)\): +([\d.]+) MiB, V \((\w+)\): +([\d.]+) MiB"
)
GGML_TYPES = {"f16": 1, "q8_0": 8, "q4_0": 2}


def llama_kv(path: Path, n_ctx: int, k: str = "f16", v: str = "f16", fa: bool = False):
    """(total MiB, cells, layers, K MiB, V MiB) as llama.cpp logs them, as strings and ints."""
    types = [str(GGML_TYPES[k]), str(GGML_TYPES[v]), "1" if fa else "0"] if k != "f16" or fa else [
        "-", "-", "-"
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", LOAD, str(path), str(n_ctx), *types],
        capture_output=True,
        text=True,
        timeout=300,
    )
    match = KV_LINE.search(done.stderr)
    assert match, done.stderr[-2000:]
    total, cells, layers, tk, k_mib, tv, v_mib = match.groups()
    assert (tk, tv) == (k, v)
    return total, int(cells), int(layers), k_mib, v_mib


def fit_json(capsys, *argv: str) -> dict:
    args = fit_command.build_parser().parse_args([*argv, "--json"])
    assert fit_command.main(args) == 0
    (model,) = json.loads(capsys.readouterr().out)["models"]
    return model


def test_llmbench_fit_embedded_gives_the_kv_bytes_llama_cpp_allocates(
    capsys, smollm_path: Path
) -> None:
    model = fit_json(capsys, "embedded", "--ctx", "4096")
    total, cells, layers, k_mib, v_mib = llama_kv(smollm_path, 4096)
    assert cells == model["n_ctx"] == 4096
    assert layers == model["n_layer"] == 30
    assert f"{model['kv_bytes'] / MIB:.2f}" == total
    assert f"{model['kv_bytes'] / 2 / MIB:.2f}" == k_mib == v_mib  # K and V, f16, same width
    # And the verdict for this machine: free RAM easily holds a 135M model.
    assert model["verdict"] in ("gpu", "partial", "cpu")
    assert model["max_ctx"]["cpu"] == 8192  # up to the trained context
    assert model["estimate"] is True


@pytest.mark.parametrize(
    ("n_ctx", "k", "v", "fa"),
    [(1000, "f16", "f16", False), (2048, "q8_0", "f16", False), (3000, "q4_0", "q4_0", True)],
)
def test_kv_bytes_for_other_sizes_and_cache_types(
    capsys, smollm_path: Path, n_ctx: int, k: str, v: str, fa: bool
) -> None:
    argv = ["embedded", "--ctx", str(n_ctx), "--cache-type-k", k, "--cache-type-v", v]
    model = fit_json(capsys, *argv, *(["--flash-attn"] if fa else []))
    total, cells, layers, k_mib, v_mib = llama_kv(smollm_path, n_ctx, k, v, fa)
    assert cells == model["n_ctx"]  # padded to 256 cells as llama.cpp pads it
    assert f"{model['kv_bytes'] / MIB:.2f}" == total
    # SmolLM2: 30 layers × 3 KV heads × 64 = 5760 values per cell for K, as many for V.
    assert layers == 30
    per_value = {"f16": 2, "q8_0": 34 / 32, "q4_0": 18 / 32}
    assert f"{cells * 5760 * per_value[k] / MIB:.2f}" == k_mib
    assert f"{cells * 5760 * per_value[v] / MIB:.2f}" == v_mib


async def test_the_run_record_holds_prediction_and_measurement(monkeypatch) -> None:
    monkeypatch.setenv("LLMBENCH_GGUF_THREADS", "1")
    from llmbench_tui.commands.calibrate import measure

    gb_s, _ = measure(seconds=0.5, size_mb=64)
    monkeypatch.setenv("LLMBENCH_CPU_PEAK_GB_S", str(gb_s))
    plan = Plan(
        models=[ModelSpec.parse("embedded")],
        prompts=[PromptSpec(id="p", text="Name three colours.")],
        options=Options(temperature=0, seed=1, max_tokens=16, num_ctx=2048),
        repetitions=1,
        warmup=0,
    )
    fin = await Engine(plan).run()
    (rec,) = fin.records
    assert rec.status == "ok", rec.error
    fit = rec.fit
    predicted, measured = fit["predicted"], fit["measured"]
    assert predicted["n_ctx"] == 2048
    # llama.cpp's own logged KV size (MiB, two decimals) equals the prediction.
    assert abs(measured["kv_bytes"] - predicted["kv_bytes"]) <= 0.005 * MIB
    assert fit["error_pct"]["kv_bytes"] == pytest.approx(0, abs=0.01)
    assert measured["decode_tok_s"] == rec.server.decode_tok_s > 0
    assert predicted["decode_ceiling_tok_s"] > 0
    assert fit["decode_within_ceiling"] is True
    stored = rec.to_json()
    assert stored["fit"]["predicted"]["kv_bytes"] == predicted["kv_bytes"]


def test_a_llama_server_says_its_model_through_props(capsys, smollm_path: Path) -> None:
    """llama-server's ``GET /props`` names its model file and context; a server without it
    (llama-cpp-python's own) is said to be silent."""
    import http.server
    import threading

    props = {"model_path": str(smollm_path), "default_generation_settings": {"n_ctx": 2048}}

    class Props(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == "/props"
            body = json.dumps(props if found else {"error": "not found"}).encode()
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Props)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        model = fit_json(capsys, f"openai:smollm@{url}/v1")
        assert model["n_ctx"] == 2048 and model["kv_bytes"] == 45 * MIB
        assert model["source"] == "llama-server /props"
        props.clear()
        args = fit_command.build_parser().parse_args([f"openai:smollm@{url}/v1"])
        assert fit_command.main(args) == 1
        assert "is not a file on this machine" in capsys.readouterr().err
    finally:
        server.shutdown()
