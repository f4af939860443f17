"""The prediction next to the measurement, in every run record (``record["fit"]``).

Once per model and context size a session predicts (``estimate``); each finished run then adds
what it measured, so the history shows how good the predictions are:

- KV-cache bytes: llama.cpp's own report of the buffer it allocated (in-process GGUF runs, read
  from its log when the model was loaded: ``backends.llama_log``);
- process memory: the process's resident memory at its peak during the run (telemetry), against
  what the process held before the model was loaded plus the predicted resident memory for the
  context this run used (``FitEstimate.resident_bytes``: the compute buffer is reserved whole but
  only the pages a run writes are resident) — in-process; for Ollama, the prediction against
  Ollama's own account of the loaded model (``/api/ps`` ``size``);
- decode rate: the measured rate against the ceiling (a ceiling below the measurement is wrong).

``error_pct`` is ``(predicted − measured) / measured × 100`` for each pair that has both sides.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..schema import ModelSpec, RunRecord

if TYPE_CHECKING:  # the estimate's modules load numpy (gguf): imported when a run first ends
    from .estimate import FitEstimate
    from .machine import Machine

log = logging.getLogger(__name__)
MIB = 1024 * 1024


def _pct(predicted: float | None, measured: float | None) -> float | None:
    if predicted is None or not measured:
        return None
    return round((predicted - measured) / measured * 100, 2)


class FitCheck:
    """Predictions cached for a session; ``check`` builds one run's ``fit`` field."""

    def __init__(self, data_dir: Path | None) -> None:
        self.data_dir = data_dir
        self._machine: Machine | None = None
        self._fits: dict[tuple[str, int | None], FitEstimate | str] = {}

    async def predict(self, spec: ModelSpec, backend: Any, n_ctx: int | None) -> FitEstimate | str:
        from .listing import fit_one, machine_now

        key = (spec.label, n_ctx)
        if key not in self._fits:
            if self._machine is None:
                self._machine = await machine_now(self.data_dir)
            self._fits[key] = await fit_one(spec, backend, self._machine, n_ctx)
        return self._fits[key]

    async def check(self, rec: RunRecord, spec: ModelSpec, backend: Any) -> dict[str, Any] | None:
        """The run's ``fit`` field; never raises (a prediction must never lose a run)."""
        try:
            n_ctx = rec.options.get("n_ctx") or rec.options.get("num_ctx")
            fit = await self.predict(spec, backend, int(n_ctx) if n_ctx else None)
            if isinstance(fit, str):
                return {"error": fit}
            report = getattr(backend, "llama_report", None)
            llama = report(spec, fit.n_ctx) if callable(report) else None
            return compare(fit, rec, llama or {})
        except Exception as exc:
            log.warning("fit check for run %s failed: %s", rec.id, exc)
            return None


def compare(fit: FitEstimate, rec: RunRecord, llama: dict[str, Any]) -> dict[str, Any]:
    """Predicted and measured figures side by side (module docstring)."""
    model_bytes = fit.total_bytes
    baseline = llama.get("rss_before_load_bytes")
    used = (rec.tokens.prompt or 0) + (rec.tokens.output or 0)
    predicted: dict[str, Any] = {
        "n_ctx": fit.n_ctx,
        "verdict": fit.verdict,
        "gpu_layers": fit.gpu_layers,
        "kv_bytes": fit.kv_bytes,
        "model_bytes": model_bytes,
        "process_bytes": baseline + fit.resident_bytes(used) if baseline is not None else None,
        "decode_ceiling_tok_s": fit.decode_ceiling_tok_s,
    }
    tele = rec.telemetry or {}
    rss = (tele.get("proc_rss_mb") or {}).get("max")
    ps_block = tele.get("ollama_ps")
    ps: dict[str, Any] = ps_block if isinstance(ps_block, dict) else {}
    decode = (rec.server.decode_tok_s if rec.server else None) or rec.timings.decode_tok_s
    measured = {
        "kv_bytes": llama.get("kv_bytes"),
        "compute_bytes": llama.get("compute_bytes"),
        "process_bytes": int(rss * MIB) if rss else None,
        "ollama_size_bytes": ps.get("size") if ps.get("loaded") else None,
        "decode_tok_s": decode,
    }
    errors = {
        "kv_bytes": _pct(fit.kv_bytes, measured["kv_bytes"]),
        "process_bytes": _pct(predicted["process_bytes"], measured["process_bytes"]),
        "ollama_size_bytes": _pct(model_bytes, measured["ollama_size_bytes"]),
    }
    ceiling = fit.decode_ceiling_tok_s
    return {
        "predicted": predicted,
        "measured": measured,
        "error_pct": {k: v for k, v in errors.items() if v is not None},
        "decode_within_ceiling": None if not (ceiling and decode) else decode <= ceiling,
        "estimate_source": fit.source,
    }
