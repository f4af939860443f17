"""A crash-safe, multi-process TinyDB storage with a write-ahead journal (TinyDB's JSON format).

TinyDB's stock ``JSONStorage`` rewrites the database in place, so a crash mid-write leaves a
broken file, and two processes writing at once silently lose each other's records. Rewriting the
whole file atomically fixes that but costs a full rewrite per insert (74 ms at 10,000 runs, 0.5 s
at 50,000). So this storage keeps two files:

- ``history.json``, a plain TinyDB JSON database, only ever replaced whole: written to a temp file
  in the same directory, fsynced, ``os.replace``d and the directory fsynced, so at every instant it
  is either the old complete database or the new complete one. Its ``_meta`` table holds a write
  nonce (first bytes of the file) and ``journal.seq``, the last journal entry it contains. **Stock
  TinyDB opening history.json sees everything compacted so far**, not the journal's tail.
- ``history.json.journal``, the write-ahead journal: one line per insert, ``<crc32 hex> <json>``,
  the JSON being ``{"seq": n, "ops": [[table, doc_id, doc], ...]}`` (a put: insert or replace).
  :meth:`AtomicJSONStorage.append` takes the lock, appends one line with a single ``write``,
  fsyncs and returns: acknowledged means durable, and one line is all-or-nothing.

Reading = parse history.json, then apply the journal entries with ``seq`` above its
``journal.seq``, in order, without gaps. Entries at or below it are already in the file (a crash
between a compaction's replace and its journal removal leaves them behind), so replay is
idempotent, and a run deleted by a compaction is never brought back by an old entry. A last line
without its newline or with a bad checksum is a torn append (a crash mid-write, never
acknowledged): readers ignore it and the next writer truncates it away under the lock. A bad line
*followed by* good ones is damage, reported as :class:`CorruptDatabase` (``llmbench doctor``
salvages the good lines).

Compaction (:meth:`AtomicJSONStorage.write`, which is also what TinyDB's own writes call) replaces
history.json with everything read so far and then removes the journal. It happens when the journal
would pass :data:`JOURNAL_MAX_ENTRIES` entries or :data:`JOURNAL_MAX_BYTES`, on request, and for
writes that are not plain puts (delete, migration).

Other properties:

- read-modify-write cycles are serialised across processes by a lock file (``filelock``), held
  by :meth:`AtomicJSONStorage.transaction` around the read *and* the write;
- a process keeps the parsed tables in memory and re-parses history.json only when its identity
  (device, inode, size, mtime) or its nonce changed (ext4 reuses a freed inode at once and its
  mtime ticks coarsely); when only the journal grew, it reads and applies just the new tail;
- a read without the lock that sees the two files out of step (a compaction between them) is
  redone under the lock, so a reader never sees an acknowledged run vanish;
- "side tables" (the store's telemetry series) travel in the journal but never into history.json:
  they are kept in memory until a compaction hands them to ``on_compact``, which stores them
  elsewhere before the journal is dropped;
- ``orjson`` serialises, and each document's bytes (an ``orjson.Fragment``) are kept from one
  compaction to the next, so documents must be replaced, never mutated in place.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from filelock import FileLock, Timeout
from tinydb.storages import Storage

LOCK_TIMEOUT_S = 60.0
META_TABLE = "_meta"
NONCE_KEY = "nonce"
JOURNAL_KEY = "journal"  # _meta document {"seq": n}: the last journal entry in the file
# An insert compacts only when the journal would pass one of these: far beyond one session's
# inserts, so that an insert does not wait for a rewrite of the whole file. The journal is
# folded in at close, and at open when it is over the FOLD_AT_OPEN limits (a killed session).
JOURNAL_MAX_ENTRIES = 1_000_000
JOURNAL_MAX_BYTES = 256 * 1024 * 1024  # (module constants: tests lower them)
FOLD_AT_OPEN_ENTRIES = 256
FOLD_AT_OPEN_BYTES = 4 * 1024 * 1024
BULK_OPS = 256  # a write of more documents than this (an import) goes straight into the file
_HEAD = 64  # bytes compared to tell two versions of a file apart (holds the nonce / first crc)

Tables = dict[str, dict[str, Any]]
Op = list  # [table, doc_id, doc]: put doc under doc_id
Entry = tuple[int, list[Op]]  # (seq, ops) of one journal line


class CorruptDatabase(Exception):
    """The file exists but is not a TinyDB JSON database; ``reason`` says what is wrong."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class LockTimeout(Exception):
    """Another process held the database lock for longer than :data:`LOCK_TIMEOUT_S`."""


class _OutOfStep(Exception):
    """A read without the lock saw history.json and its journal from different moments."""


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def journal_path(path: Path) -> Path:
    return path.with_name(path.name + ".journal")


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


def base_seq(tables: Tables | None) -> int:
    """The last journal entry a parsed history.json contains (0 for a file without one)."""
    doc = (tables or {}).get(META_TABLE, {}).get(JOURNAL_KEY)
    seq = doc.get("seq") if isinstance(doc, dict) else None
    return seq if isinstance(seq, int) and seq >= 0 else 0


def encode_entry(seq: int, ops: list[Op]) -> bytes:
    """One journal line: the payload's crc32 (8 hex digits), a space, the payload, a newline.

    orjson escapes control characters in strings, so the payload never contains a newline.
    """
    payload = orjson.dumps({"seq": seq, "ops": ops})
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def _decode_line(line: bytes) -> Entry | None:
    if len(line) < 10 or line[8:9] != b" ":
        return None
    try:
        crc = int(line[:8], 16)
    except ValueError:
        return None
    payload = line[9:]
    if zlib.crc32(payload) != crc:
        return None
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    seq, ops = (obj.get("seq"), obj.get("ops")) if isinstance(obj, dict) else (None, None)
    if not isinstance(seq, int) or not isinstance(ops, list):
        return None
    if not all(isinstance(op, list) and len(op) == 3 and isinstance(op[1], str) for op in ops):
        return None
    return seq, ops


@dataclass
class JournalScan:
    """What a journal's bytes hold: valid entries, where they end, and any damage."""

    entries: list[Entry] = field(default_factory=list)
    end: int = 0  # offset just past the last valid line (bytes after it are a torn tail)
    damage: int | None = None  # offset of a bad line followed by good ones (not a torn append)


def scan_journal(data: bytes) -> JournalScan:
    """Decode journal lines; stop at the first bad or unterminated line."""
    scan = JournalScan()
    pos = 0
    while (nl := data.find(b"\n", pos)) >= 0:
        entry = _decode_line(data[pos:nl])
        if entry is None:
            later = data[nl + 1 :].split(b"\n")[:-1]  # complete lines after the bad one
            if any(_decode_line(line) is not None for line in later):
                scan.damage = pos
            break
        scan.entries.append(entry)
        pos = scan.end = nl + 1
    return scan


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


def _replace_unsynced(path: Path, data: bytes) -> os.stat_result:
    """Write ``data`` to a fsynced temp file and rename it over ``path``; the rename is not
    durable until the caller fsyncs the directory."""
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
    return st


def atomic_write_bytes(path: Path, data: bytes) -> os.stat_result:
    """Replace ``path`` by ``data`` so that a crash leaves either the old or the new file.

    Returns the stat of the written file, so a caller can remember its identity.
    """
    st = _replace_unsynced(path, data)
    fsync_dir(path.parent)
    return st


def atomic_write_many(files: dict[Path, bytes]) -> None:
    """:func:`atomic_write_bytes` for several files, with one directory fsync per directory
    at the end (each file is still old-or-new at every instant; all are durable on return)."""
    for path, data in files.items():
        _replace_unsynced(path, data)
    for directory in {path.parent for path in files}:
        fsync_dir(directory)


def _peek(path: Path) -> tuple[tuple[int, int, int, int], bytes] | None:
    """(identity, first bytes) of the file now at ``path``; ``None`` when there is none."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        return None
    with handle:
        return _identity(os.fstat(handle.fileno())), handle.read(_HEAD)


class AtomicJSONStorage(Storage):
    """TinyDB storage: journaled appends, atomic compaction, cross-process lock, cached parse.

    ``read()`` may be called without the lock; ``write()`` (a compaction) and ``append()`` must
    happen inside :meth:`transaction`, which makes a read-modify-write cycle safe against other
    processes. ``side_tables`` name tables kept out of history.json (see the module docstring);
    ``on_compact(side, tables)`` must store them durably before it returns.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        side_tables: Iterable[str] = (),
        on_compact: Callable[[Tables, Tables], None] | None = None,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.journal_path = journal_path(self.path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._file_lock = FileLock(
            self.lock_path, timeout=LOCK_TIMEOUT_S, thread_local=False, poll_interval=0.002
        )
        self.side_tables = frozenset(side_tables)
        self.on_compact = on_compact
        self._mutex = threading.RLock()
        self._depth = 0
        self._frags: dict[str, dict[str, tuple[Any, orjson.Fragment]]] = {}
        self._forget()
        self.reloads = 0  # how often history.json was parsed (after another process compacted)
        self.replays = 0  # how often the whole journal was replayed (not just its new tail)

    def _forget(self) -> None:
        """Drop every cached view, so the next read parses both files."""
        self._base: Tables | None = None  # history.json as parsed
        self._ident: tuple[int, int, int, int] | None = None
        self._head = b""
        self._base_seq = 0
        self._forget_journal()

    def _forget_journal(self) -> None:
        self._tables: Tables | None = self._base  # history.json + journal entries applied
        self._side: Tables = {}
        self._owned: set[str] = set()  # tables of _tables/_side copied from the base (mutable)
        self._seq = self._base_seq  # last entry applied
        self._jino: tuple[int, int] | None = None  # (device, inode) of the journal read
        self._jhead = b""  # its first bytes, to tell a recreated journal from a grown one
        self._jend = 0  # offset past its last valid line
        self._jsize = 0  # its size when last read (> _jend: a torn tail)
        self._jlive = 0  # entries above the base's seq (what a compaction would fold in)

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

    # -- reading ---------------------------------------------------------------------------

    def read(self) -> Tables | None:
        with self._mutex:
            if self._depth:
                try:
                    return self._load()
                except _OutOfStep as exc:  # under the lock nothing moves: this is damage
                    self._forget()
                    raise CorruptDatabase(self.journal_path, str(exc)) from None
            try:
                return self._load()
            except _OutOfStep:
                with self.transaction():  # a compaction ran between our reads: read again
                    return self.read()

    def side(self, table: str) -> dict[str, Any]:
        """A side table's documents that are still only in the journal (treat as read-only)."""
        with self._mutex:
            return self._side.get(table, {})

    @property
    def needs_folding(self) -> bool:
        """Whether the journal (as of the last read) is long enough to fold in at open."""
        return self._jlive > FOLD_AT_OPEN_ENTRIES or self._jend > FOLD_AT_OPEN_BYTES

    @property
    def journal_entries(self) -> int:
        """Entries waiting in the journal (as of the last read): what a compaction folds in."""
        return self._jlive

    def _load(self) -> Tables | None:
        self._load_base()
        self._load_journal()
        if self._base is None and self._jlive:
            raise CorruptDatabase(
                self.path,
                f"is missing but its journal {self.journal_path.name} holds {self._jlive} "
                "entries; restore the file or move the journal away",
            )
        if not self._depth:
            # Without the lock, a compaction may have replaced history.json after we parsed
            # it and before we read the journal: then the pair is out of step.
            seen = (self._ident, self._head) if self._ident is not None else None
            if _peek(self.path) != seen:
                raise _OutOfStep("history.json changed while its journal was read")
        return self._tables

    def _load_base(self) -> None:
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - closed by the with below
        except FileNotFoundError:
            if self._ident is not None or self._base is not None:
                self._forget()
            return
        with handle:
            ident = _identity(os.fstat(handle.fileno()))
            head = handle.read(_HEAD)
            if self._ident is not None and ident == self._ident and head == self._head:
                return
            data = head + handle.read()
        self._ident = None  # until the parse succeeds
        base = parse_tables(data, self.path)
        self._base, self._ident, self._head = base, ident, head
        self._base_seq = base_seq(base)
        self._frags = {}
        self._forget_journal()
        self.reloads += 1

    def _load_journal(self) -> None:
        try:
            handle = open(self.journal_path, "rb")  # noqa: SIM115 - closed by the with below
        except FileNotFoundError:
            # Compacted away (if history.json changed meanwhile, _load notices) or removed.
            self._forget_journal()
            return
        with handle:
            st = os.fstat(handle.fileno())
            ino = (st.st_dev, st.st_ino)
            head = handle.read(len(self._jhead)) if self._jhead else b""
            grown = ino == self._jino and head == self._jhead and st.st_size >= self._jend
            if grown and st.st_size == self._jend:
                self._jsize = st.st_size
                return
            if not grown:
                self._forget_journal()
                self.replays += 1
            handle.seek(self._jend)
            data = handle.read()
        start = self._jend
        scan = scan_journal(data)
        if scan.damage is not None:
            raise _OutOfStep(
                f"the entry at byte {start + scan.damage} is damaged and valid entries follow it"
            )
        fresh = [(seq, ops) for seq, ops in scan.entries if seq > self._seq]
        for i, (seq, _) in enumerate(fresh):
            if seq != self._seq + 1 + i:
                raise _OutOfStep(
                    f"entry {seq} follows entry {self._seq + i}: entries are missing "
                    f"(history.json holds up to {self._base_seq})"
                )
        if fresh:
            self._apply(fresh)
        self._jino = ino
        self._jend = start + scan.end
        self._jsize = start + len(data)
        if len(self._jhead) < _HEAD:
            self._jhead = (self._jhead + data[: scan.end])[:_HEAD]

    def _apply(self, entries: list[Entry], *, bump_seq: bool = True) -> None:
        """Apply journal entries to the cached tables. A table is copied once, the first time
        the journal changes it after a parse (the parsed base stays as read), then changed in
        place: copying 100,000 runs per insert cost ~5 ms. Readers in other threads therefore
        iterate snapshots (``list(table.items())``, atomic under the GIL), never the dict."""
        tables: Tables = (
            self._tables
            if self._tables is not None and self._tables is not self._base
            else dict(self._base or {})
        )
        side = self._side
        for seq, ops in entries:
            for name, doc_id, doc in ops:
                target = side if name in self.side_tables else tables
                if name not in self._owned:
                    target[name] = dict(target.get(name, {}))
                    self._owned.add(name)
                target[name][doc_id] = doc
            if bump_seq:
                self._seq = seq
                self._jlive += 1
        self._tables, self._side = tables, side

    # -- writing ---------------------------------------------------------------------------

    def _require_lock(self, what: str) -> None:
        if self._depth == 0:
            raise RuntimeError(f"AtomicJSONStorage.{what}() outside transaction()")

    def append(self, ops: list[Op]) -> None:
        """Durably add ``ops`` (puts) as one journal entry; compacts instead when the journal
        is full. Must be called inside :meth:`transaction`; durable when it returns."""
        with self._mutex:
            self._require_lock("append")
            self.read()
            if len(ops) > min(BULK_OPS, JOURNAL_MAX_ENTRIES):  # an import: not worth journaling
                copies = [[name, doc_id, dict(doc)] for name, doc_id, doc in ops]
                self._apply([(self._seq, copies)], bump_seq=False)
                self.write(self._tables or {})
                return
            seq = self._seq + 1
            line = encode_entry(seq, ops)
            if self._jlive + 1 > JOURNAL_MAX_ENTRIES or self._jend + len(line) > JOURNAL_MAX_BYTES:
                self._apply([(seq, orjson.loads(line[9:])["ops"])], bump_seq=False)
                self.write(self._tables or {})
                return
            self._prepare_journal()
            self._append_line(line)
            # What other processes will read back: the bytes, not the caller's objects.
            self._apply([(seq, orjson.loads(line[9:])["ops"])])
            self._jend += len(line)
            self._jsize = self._jend
            if len(self._jhead) < _HEAD:
                self._jhead = (self._jhead + line)[:_HEAD]

    def _prepare_journal(self) -> None:
        """Under the lock, before an append: cut a torn tail, drop a journal that holds only
        entries already compacted (a compaction interrupted before it removed the journal)."""
        if self._jend and not self._jlive:
            self.journal_path.unlink(missing_ok=True)
            self._forget_journal()
        elif self._jsize > self._jend:
            fd = os.open(self.journal_path, os.O_WRONLY)
            try:
                os.ftruncate(fd, self._jend)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._jsize = self._jend

    def _append_line(self, line: bytes) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.journal_path, flags, 0o644)
        try:
            st = os.fstat(fd)
            if st.st_size != self._jend:  # not the journal we read: never append blindly
                self._forget()
                raise CorruptDatabase(
                    self.journal_path, "was changed by a process not holding the lock; retry"
                )
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, self._jend)  # best effort; a reader ignores it anyway
                self._jino = None  # re-read everything next time
                raise
        finally:
            os.close(fd)
        if self._jino is None:
            fsync_dir(self.path.parent)  # a new journal: make its name durable too
            self._jino = (st.st_dev, st.st_ino)

    def compact(self) -> None:
        """Fold the journal into history.json now (inside :meth:`transaction`)."""
        with self._mutex:
            self._require_lock("compact")
            tables = self.read()
            if self._jend or self._side:
                self.write(tables or {})

    def write(self, data: Tables) -> None:
        """Replace history.json by ``data`` (everything read so far, plus changes), then drop
        the journal. ``data`` must come from :meth:`read` in the same transaction."""
        with self._mutex:
            self._require_lock("write")
            if self._side and self.on_compact is not None:
                self.on_compact(self._side, data)  # stored durably before the journal goes
            meta = {
                k: v
                for k, v in data.get(META_TABLE, {}).items()
                if k not in (NONCE_KEY, JOURNAL_KEY)
            }
            ordered: Tables = {
                META_TABLE: {
                    NONCE_KEY: {"v": os.urandom(8).hex()},
                    JOURNAL_KEY: {"seq": self._seq},
                    **meta,
                }
            }
            ordered.update((k, v) for k, v in data.items() if k != META_TABLE)
            payload = orjson.dumps(self._fragments(ordered))
            self._ident = None  # if anything below fails, the next read re-parses the files
            st = atomic_write_bytes(self.path, payload)
            seq = self._seq
            self._base, self._ident, self._head = ordered, _identity(st), payload[:_HEAD]
            self._base_seq = seq
            self._forget_journal()
            # A crash here leaves journal entries <= seq behind: replay skips them.
            with contextlib.suppress(FileNotFoundError):
                self.journal_path.unlink()
                fsync_dir(self.path.parent)

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
            self._frags = {}
            self._forget()
