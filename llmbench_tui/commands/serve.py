"""``llmbench serve``: the dashboard in a browser, with read-only JSON and Prometheus metrics.

Each browser connection gets its own dashboard process (textual-serve runs ``command`` per
websocket): ``python -m llmbench_tui.cli --data-dir DIR --mouse`` with this interpreter, so it
reads the same data folder, config directory (``LLMBENCH_CONFIG_DIR``) and model sources as the
terminal app. ``--mouse`` because the browser is not the SSH terminal the automatic mouse rule
is about. Beside it, ``/api/runs``, ``/api/runs/{id}``, ``/api/sessions/{id}`` and ``/metrics``
(``llmbench_tui.web``).

Only loopback addresses are served unless ``--public`` is given: a non-loopback ``--host``
without it exits with code 2 before anything is bound. ``--public`` requires a token (``--token``,
``LLMBENCH_SERVE_TOKEN``, or one generated and printed at start): every request must carry it
(``Authorization: Bearer``, or the cookie the ``/login`` page sets), else 401
(``llmbench_tui.web.auth``). Loopback mode needs no token unless one is given. The token travels
in clear over plain HTTP: from another machine, an SSH tunnel or a TLS proxy is still better.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shlex
import socket
import sys

from llmbench_tui import config
from llmbench_tui.commands.common import add_data_dir, fail
from llmbench_tui.store import StoreError, open_store, store_location

PROG = "llmbench serve"


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve the dashboard to browsers (one dashboard per connection) with "
        "read-only JSON (/api/runs, /api/runs/ID, /api/sessions/ID) and /metrics.",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; others need --public)",
    )
    parser.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    add_data_dir(parser)
    parser.add_argument(
        "--public",
        action="store_true",
        help="allow a non-loopback --host; every request then needs the token",
    )
    parser.add_argument(
        "--token",
        help="the access token (default LLMBENCH_SERVE_TOKEN; with --public and neither, one is "
        "generated and printed)",
    )
    parser.add_argument("--theme", help="dashboard theme for every browser session")
    parser.add_argument("--ollama-host", help="default Ollama host (env OLLAMA_HOST)")
    parser.add_argument(
        "--max-sessions",
        type=_positive,
        default=8,
        metavar="N",
        help="dashboards running at once, one process each (default 8)",
    )
    return parser


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 1 and 65535, got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def is_loopback_host(host: str) -> bool:
    """True when every address ``host`` names is a loopback address (127/8, ::1).

    An address literal is judged as is; a name is resolved (``localhost`` on most systems,
    Debian's own hostname on 127.0.1.1). A name that does not resolve is not loopback.
    """
    host = host.strip().strip("[]")
    if not host:
        return False  # "" means every interface
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    addresses = {str(info[4][0]).split("%")[0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def refusal(host: str) -> str:
    return (
        f"refusing to listen on {host!r}: it is not a loopback address, and anyone who can reach "
        "it could open the dashboard, run benchmarks on this machine and read every stored prompt "
        "and response. Use --public to serve it with token authentication, or keep 127.0.0.1 "
        "and reach it through an SSH tunnel (ssh -L 8000:127.0.0.1:8000 HOST)"
    )


def warning(host: str, port: int) -> str:
    return (
        f"{PROG}: WARNING: --public: anyone who can reach {host}:{port} and holds the token "
        "can open the dashboard, run benchmarks on this machine and read every stored run, "
        "prompts and responses included. Plain HTTP carries the token in clear: serve it on a "
        "network you trust, or behind a TLS reverse proxy."
    )


def app_command(data_dir: str, theme: str | None, ollama_host: str | None) -> str:
    """The shell command textual-serve runs for each browser connection."""
    argv = [sys.executable, "-m", "llmbench_tui.cli", "--data-dir", data_dir, "--mouse"]
    if theme:
        argv += ["--theme", theme]
    if ollama_host:
        argv += ["--ollama-host", ollama_host]
    return shlex.join(argv)


def main(args: argparse.Namespace) -> int:
    if not args.public and not is_loopback_host(args.host):
        return fail(PROG, refusal(args.host), 2)
    token = args.token or os.environ.get("LLMBENCH_SERVE_TOKEN") or None
    if args.public:
        print(warning(args.host, args.port), file=sys.stderr, flush=True)
        if token is None:
            from llmbench_tui.web.auth import new_token

            token = new_token()
            print(f"{PROG}: token (give it at /login, or as Authorization: Bearer): {token}",
                  flush=True)  # fmt: skip
    try:
        data_dir = config.data_dir(args.data_dir).resolve()
        location = store_location(args.store)
        store = open_store(location, data_dir)
        if location:  # each dashboard opens the same store; by environment, so that a
            os.environ["LLMBENCH_STORE"] = location  # password never shows in `ps`
    except (StoreError, OSError) as exc:
        return fail(PROG, str(exc), 2)
    from llmbench_tui.web.server import LLMBenchServer  # aiohttp only when serving

    server = LLMBenchServer(
        app_command(str(data_dir), args.theme, args.ollama_host),
        store=store, host=args.host, port=args.port,
        loopback_only=not args.public, max_sessions=args.max_sessions, token=token,
    )  # fmt: skip
    try:
        server.serve()
    except OSError as exc:
        store.close()
        return fail(PROG, f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", 1)
    return 0
