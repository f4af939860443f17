"""A real PostgreSQL server for the team-store tests: Debian's ``postgresql`` binaries, a
temporary data directory, a free loopback port and a private socket directory.

PostgreSQL refuses to run as root (and CI runs as root), so as root the server runs as an
unprivileged system user (``llmbench-pg``, created with ``useradd`` when missing; ``nobody`` if
that fails) that owns the temporary directory. Logins: ``bench`` is the superuser (trust over
TCP from 127.0.0.1), ``secret`` needs the password ``right-password`` — for the wrong-password
test. ``new_database()`` gives each test a fresh database.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

USER = "llmbench-pg"
PASSWORD = "right-password"


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]))  # fmt: skip
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_as_user() -> str | None:
    """The unprivileged user to run the server as (None: we are not root, run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(USER)
    except KeyError:
        done = subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                               "/usr/sbin/nologin", USER], capture_output=True)  # fmt: skip
        if done.returncode != 0:
            return "nobody"
    return USER


class PgServer:
    """One PostgreSQL cluster in a temporary directory (``start``/``stop``/``kill``)."""

    def __init__(self, root: Path, *, durable: bool = False) -> None:
        binaries = pg_bin()
        if binaries is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin = binaries
        self.root = root
        self.data = root / "data"
        self.sockets = root / "sock"
        self.port = free_port()
        self.user = _run_as_user()
        self.durable = durable  # False (tests): fsync=off, faster; benchmarks keep fsync on

    def _as_user(self, argv: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        if self.user is not None:
            argv = ["runuser", "-u", self.user, "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120,
                              **kwargs)  # type: ignore[call-overload]  # fmt: skip

    def init(self) -> PgServer:
        self.sockets.mkdir(parents=True)
        pwfile = self.root / "pw"
        pwfile.write_text("bootstrap\n")
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for path in (self.root, self.sockets, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            os.chmod(self.root, 0o700)
        self._as_user([str(self.bin / "initdb"), "-D", str(self.data), "-U", "bench",
                       "--auth-local=trust", "--auth-host=trust", "--pwfile", str(pwfile),
                       "-E", "UTF8", "--no-sync"])  # fmt: skip
        hba = self.data / "pg_hba.conf"
        rules = ("host all secret 127.0.0.1/32 scram-sha-256\n"
                 "host all all 127.0.0.1/32 trust\nlocal all all trust\n")  # fmt: skip
        hba.write_text(rules)
        self.start()
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE ROLE secret LOGIN PASSWORD '{PASSWORD}'")
        return self

    def start(self) -> None:
        opts = (f"-k {self.sockets} -p {self.port} -c listen_addresses=127.0.0.1 "
                "-c max_connections=50")  # fmt: skip
        if not self.durable:
            opts += " -c fsync=off"
        self._as_user([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                       str(self.root / "server.log"), "-o", opts, "-w", "start"])  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._as_user([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])

    def url(self, database: str, user: str = "bench", password: str | None = None) -> str:
        login = f"{user}:{password}" if password is not None else user
        return f"postgresql://{login}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL (user ``bench``)."""
        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
            conn.execute(f"GRANT ALL ON DATABASE {name} TO secret")
        return self.url(name)

    def cleanup(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One server for the whole test session, torn down at the end."""
    root = Path(tempfile.mkdtemp(prefix="llmbench-pg-"))
    server = PgServer(root)
    try:
        server.init()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh database on the session's server."""
    return pg_server.new_database()


def wait_until(check, timeout: float = 30.0, interval: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False
