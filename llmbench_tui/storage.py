"""A crash-safe, multi-process TinyDB storage (the file format stays TinyDB's JSON).

TinyDB's stock ``JSONStorage`` rewrites the database in place, so a crash mid-write leaves a
broken file, and two processes writing at once silently lose each other's records. This storage:

- writes every change to a temp file in the same directory, fsyncs it, ``os.replace``s it over the
  database and fsyncs the directory: at every instant the file on disk is either the old complete
  database or the new complete one;
- serialises read-modify-write cycles across processes with a lock file (``filelock``), held by
  :meth:`AtomicJSONStorage.transaction` around the read *and* the write;
- keeps the parsed tables in memory and re-reads the file only when its identity (device, inode,
  size, mtime) or its write nonce changed, which is what makes listing and searching fast. The
  nonce (random, rewritten on every write, first bytes of the file) covers what the identity
  cannot: ext4 reuses a freed inode at once and its mtime ticks only every few milliseconds, so
  two quick writes of the same size could otherwise look unchanged;
- uses ``orjson``, several times faster than the stdlib ``json`` for files of this size, and keeps
  each document's serialized bytes (an ``orjson.Fragment``) from one write to the next, so a write
  serializes only the documents that are new; the rest is a copy of bytes. Documents must
  therefore be replaced, never mutated in place (the store only ever inserts and removes them).

A file that cannot be parsed raises :class:`CorruptDatabase` and is never written over.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from filelock import FileLock, Timeout
from tinydb.storages import Storage

LOCK_TIMEOUT_S = 60.0
META_TABLE = "_meta"
NONCE_KEY = "nonce"
_HEAD = 64  # bytes compared to tell two versions of the file apart (holds the nonce)

Tables = dict[str, dict[str, Any]]


class CorruptDatabase(Exception):
    """The file exists but is not a TinyDB JSON database; ``reason`` says what is wrong."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class LockTimeout(Exception):
    """Another process held the database lock for longer than :data:`LOCK_TIMEOUT_S`."""


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def parse_tables(data: bytes, path: Path) -> Tables | None:
    """Parse a database file's bytes; ``None`` for an empty file (a database never written)."""
    if not data.strip():
        return None
    try:
        tables = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CorruptDatabase(path, f"not valid JSON ({exc})") from None
    if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
        raise CorruptDatabase(
            path, "valid JSON but not a TinyDB database (a table is not an object)"
        )
    return tables


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> os.stat_result:
    """Replace ``path`` by ``data`` so that a crash leaves either the old or the new file.

    Returns the stat of the written file, so a caller can remember its identity.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            st = os.fstat(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return st


class AtomicJSONStorage(Storage):
    """TinyDB storage: atomic replace-on-write, cross-process lock, cached parse.

    ``read()`` may be called without the lock (``os.replace`` makes every version of the file
    complete); ``write()`` must happen inside :meth:`transaction`, which is what makes a
    read-modify-write cycle safe against other processes.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._file_lock = FileLock(
            self.lock_path, timeout=LOCK_TIMEOUT_S, thread_local=False, poll_interval=0.002
        )
        self._mutex = threading.RLock()
        self._depth = 0
        self._tables: Tables | None = None
        self._ident: tuple[int, int, int, int] | None = None
        self._head = b""
        self._frags: dict[str, dict[str, tuple[Any, orjson.Fragment]]] = {}
        self.reloads = 0  # how often the file was parsed (a re-read after another writer)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the thread and process locks; nested use is allowed."""
        with self._mutex:
            if self._depth == 0:
                self.lock_path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    self._file_lock.acquire()
                except Timeout:
                    raise LockTimeout(
                        f"{self.path} is locked by another llmbench process "
                        f"(waited {LOCK_TIMEOUT_S:.0f} s for {self.lock_path})"
                    ) from None
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._file_lock.release()

    def read(self) -> Tables | None:
        with self._mutex:
            try:
                handle = open(self.path, "rb")  # noqa: SIM115 - closed below on every path
            except FileNotFoundError:
                self._tables, self._ident = None, None
                return None
            with handle:
                # fstat the descriptor we read from, so the identity remembered is exactly that
                # of the bytes parsed even if a writer replaces the file meanwhile.
                ident = _identity(os.fstat(handle.fileno()))
                head = handle.read(_HEAD)
                if self._tables is not None and ident == self._ident and head == self._head:
                    return self._tables
                data = head + handle.read()
            tables = parse_tables(data, self.path)
            self._tables, self._ident, self._head = tables, ident, head
            self._frags = {}
            self.reloads += 1
            return tables

    def write(self, data: Tables) -> None:
        with self._mutex:
            if self._depth == 0:
                raise RuntimeError("AtomicJSONStorage.write() outside transaction()")
            self._ident = None  # if anything below fails, the next read re-parses the file
            meta = {k: v for k, v in data.get(META_TABLE, {}).items() if k != NONCE_KEY}
            nonce = {NONCE_KEY: {"v": os.urandom(8).hex()}}
            ordered: Tables = {META_TABLE: {**nonce, **meta}}
            ordered.update((k, v) for k, v in data.items() if k != META_TABLE)
            payload = orjson.dumps(self._fragments(ordered))
            st = atomic_write_bytes(self.path, payload)
            self._tables, self._ident, self._head = ordered, _identity(st), payload[:_HEAD]

    def _fragments(self, tables: Tables) -> Tables:
        """``tables`` with each document of a big table replaced by its cached JSON bytes."""
        frags: dict[str, dict[str, tuple[Any, orjson.Fragment]]] = {}
        out: Tables = {}
        for name, table in tables.items():
            if len(table) < 64:
                out[name] = table
                continue
            old, new = self._frags.get(name, {}), {}
            for doc_id, doc in table.items():
                hit = old.get(doc_id)
                if hit is None or hit[0] is not doc:
                    hit = (doc, orjson.Fragment(orjson.dumps(doc)))
                new[doc_id] = hit
            frags[name] = new
            out[name] = {doc_id: hit[1] for doc_id, hit in new.items()}
        self._frags = frags
        return out

    def close(self) -> None:
        with self._mutex:
            self._tables, self._ident, self._frags = None, None, {}
