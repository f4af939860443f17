"""Getting and removing Ollama models: ``/api/pull`` with its streamed progress, ``/api/delete``.

A pull streams status lines: ``pulling manifest``, then for each layer (blob) ``pulling <digest>``
lines with ``digest``, ``total`` and ``completed`` bytes, then ``verifying sha256 digest``,
``writing manifest`` and ``success``. Overall progress is the sum of ``completed`` over the sum
of ``total`` of every layer seen so far (Ollama announces layers one at a time, so the fraction
can step back when a new layer starts; ``PullProgress`` never reports less than before). A
failure arrives as an ``{"error"}`` line inside the 200 stream (an unknown name: "pull model
manifest: file does not exist") or as a dropped connection; both end the pull with one sentence,
and Ollama only lists a model once its manifest is written, so a failed pull lists nothing.
Cancelling the task closes the stream; Ollama keeps the blobs it finished and resumes from them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pydantic
from ollama import AsyncClient, ResponseError

from .base import BackendError, ModelNotFound, Unreachable
from .ollama import CONNECT_TIMEOUT_S, resolve_host


@dataclass(slots=True)
class PullProgress:
    """Where a pull stands: the last status line and the bytes of every layer seen."""

    name: str
    status: str = "starting"
    layers: dict[str, tuple[int, int]] = field(default_factory=dict)  # digest -> (done, total)
    best: float = 0.0

    @property
    def completed(self) -> int:
        return sum(done for done, _ in self.layers.values())

    @property
    def total(self) -> int:
        return sum(total for _, total in self.layers.values())

    @property
    def fraction(self) -> float:
        """0..1, never going back (see the module docstring); 1.0 once ``success`` came."""
        if self.status == "success":
            return 1.0
        now = self.completed / self.total if self.total else 0.0
        self.best = max(self.best, min(now, 1.0))
        return self.best

    def line(self) -> str:
        """One line for a terminal: status, percentage and bytes."""
        mib = 1024 * 1024
        size = f" {self.completed / mib:,.1f}/{self.total / mib:,.1f} MiB" if self.total else ""
        return f"{self.name}: {self.status} {self.fraction * 100:5.1f}%{size}"


def _client(host: str | None) -> tuple[AsyncClient, str]:
    base = resolve_host(host)
    return AsyncClient(host=base, timeout=httpx.Timeout(None, connect=CONNECT_TIMEOUT_S)), base


async def pull(
    name: str, host: str | None, on_progress: Callable[[PullProgress], None]
) -> PullProgress:
    """Pull ``name``; ``on_progress`` after every status line; ``BackendError`` on failure."""
    client, base = _client(host)
    progress = PullProgress(name)
    try:
        async for part in await client.pull(name, stream=True):
            progress.status = part.status or progress.status
            if part.digest and part.total:
                progress.layers[part.digest] = (int(part.completed or 0), int(part.total))
            on_progress(progress)
    except ResponseError as exc:
        if exc.status_code == 404 or "file does not exist" in exc.error:
            raise ModelNotFound(f"Ollama at {base} found no model {name!r} to pull") from exc
        raise BackendError(f"pulling {name!r} from Ollama at {base} failed: {exc.error}") from exc
    except (httpx.ConnectError, ConnectionError) as exc:
        raise Unreachable(f"cannot connect to Ollama at {base}: is it running?") from exc
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        raise BackendError(
            f"the connection to Ollama at {base} closed while pulling {name!r}; "
            "pull again to resume"
        ) from exc
    except (httpx.HTTPError, json.JSONDecodeError, pydantic.ValidationError) as exc:
        raise BackendError(f"pulling {name!r} from Ollama at {base} failed: {exc}") from exc
    finally:
        await client.close()
    if progress.status != "success":
        raise BackendError(f"Ollama at {base} ended the pull of {name!r} before it succeeded")
    return progress


async def delete(name: str, host: str | None) -> None:
    """Delete ``name`` from Ollama; ``ModelNotFound`` when it has no such model."""
    client, base = _client(host)
    try:
        await client.delete(name)
    except ResponseError as exc:
        if exc.status_code == 404:
            raise ModelNotFound(f"Ollama at {base} has no model {name!r} to delete") from exc
        raise BackendError(f"deleting {name!r} on Ollama at {base} failed: {exc.error}") from exc
    except (httpx.HTTPError, ConnectionError) as exc:
        raise Unreachable(f"cannot connect to Ollama at {base}: is it running?") from exc
    finally:
        await client.close()
