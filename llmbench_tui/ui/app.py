"""The Textual application: owns the shared parts (store, backend pool, telemetry, settings) and
shows the dashboard.

``run_app(args)`` is what ``llmbench`` (no ``--batch``) calls. ``args`` carries ``data_dir``,
``ollama_host``, ``models`` (spec strings to preselect), ``theme``, ``no_mouse`` (``None`` means
automatic: off over SSH, where the terminal's own text selection matters more),
``sample_interval`` and ``start`` (``"dashboard"`` or ``"history"``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from textual.app import App
from textual.binding import Binding
from textual.theme import BUILTIN_THEMES

from ..backends import BackendPool
from ..config import data_dir
from ..safe_text import notify_inert
from .dashboard import Dashboard
from .settings import Settings, SettingsError, load_themes

DEFAULT_THEME = "llmbench-dark"


class LLMBenchApp(App):
    """The dashboard app. Build it with ``build_app``; tests drive it with ``run_test``."""

    CSS_PATH = "app.tcss"
    TITLE = "llmbench"
    BINDINGS = [Binding("f9", "change_theme", "Theme", id="change_theme")]

    def __init__(
        self,
        *,
        store: Any,
        pool: BackendPool,
        hub: Any,
        settings: Settings,
        preselected: list[str] | None = None,
        theme: str | None = None,
        ollama_host: str | None = None,
        sample_interval: float = 0.5,
        start: str = "dashboard",
        models_dirs: list[str] | None = None,
        data_dir: Any = None,
    ) -> None:
        super().__init__()
        self.models_dirs = list(models_dirs or [])  # the GGUF file dialog's folders (f)
        self.data_dir = data_dir  # calibration.json: the fit column's decode ceiling
        self.store = store
        self.pool = pool
        self.hub = hub
        self.settings = settings
        self.preselected = list(preselected or [])
        self.ollama_host = ollama_host
        self.sample_interval = sample_interval
        self.start_screen = start
        self._theme_problems: list[str] = []
        themes, self._theme_problems = load_themes()
        for theme_obj in themes:
            self.register_theme(theme_obj)
        self.theme = self._pick_theme(theme)
        if settings.keys:
            self.set_keymap(settings.keys)

    def _pick_theme(self, asked: str | None) -> str:
        for name in (asked, self.settings.theme, DEFAULT_THEME):
            if name and name in self.available_themes:
                return name
        return "textual-dark"

    def on_mount(self) -> None:
        dashboard = Dashboard(self.preselected)
        self.push_screen(dashboard)
        for problem in self._theme_problems:
            notify_inert(self, problem, severity="warning")  # names a file and its error
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        if self.start_screen == "history":
            self.call_after_refresh(dashboard.action_history)

    def _remember_theme(self, theme: Any) -> None:
        self.settings.theme = theme.name
        self.settings.save()

    async def on_unmount(self) -> None:
        await self.pool.aclose()

    def binding_rows(self) -> list[tuple[str, str, str]]:
        """(keys as shown, description, binding id) for every binding of the app, after the
        user's keymap; the F1 help screen lists these."""
        keymap = self._keymap
        rows = []
        extra = [
            Binding("ctrl+p", "command_palette", "Command palette (themes, keys, quit)"),
            Binding("tab,shift+tab", "focus", "Move between panes and fields"),
            Binding("ctrl+q", "quit", "Quit"),
        ]
        for binding in [*Dashboard.BINDINGS, *self.BINDINGS, *extra]:
            keys = keymap.get(binding.id, binding.key) if binding.id else binding.key
            shown = ", ".join(self.get_key_display(Binding(k.strip(), "")) for k in keys.split(","))
            rows.append((shown, binding.description or binding.action, binding.id or "-"))
        return rows


def _no_mouse(choice: bool | None) -> bool:
    if choice is not None:
        return choice
    return bool(os.environ.get("SSH_CONNECTION"))


def build_app(args: Any) -> LLMBenchApp:
    """The app with its store, pool, telemetry hub and settings; raises ``SystemExit``-free
    ``ValueError`` with one sentence when something cannot be opened."""
    from ..store import StoreError, freeze_loaded_runs, open_store

    try:
        settings = Settings.load()
    except SettingsError as exc:
        raise ValueError(str(exc)) from None
    theme = getattr(args, "theme", None)
    if theme:
        known = set(BUILTIN_THEMES) | {t.name for t in load_themes()[0]}
        if theme not in known:
            raise ValueError(f"unknown theme {theme!r}: choose one of {', '.join(sorted(known))}")
    try:
        store = open_store(getattr(args, "store", None), getattr(args, "data_dir", None),
                           spool_when_away=True)
    except StoreError as exc:
        raise ValueError(str(exc)) from None

    freeze_loaded_runs()  # the history screen's paints then never wait on a full collection
    interval = getattr(args, "sample_interval", None) or 0.5
    hub = None
    try:
        from ..telemetry.telemetry import TelemetryHub

        hub = TelemetryHub(
            interval_s=interval,
            data_dir=data_dir(getattr(args, "data_dir", None)),  # calibration, hash cache
            server=getattr(args, "server_pid", None),
        )
    except ImportError:
        pass
    return LLMBenchApp(
        store=store,
        pool=BackendPool(ollama_host=getattr(args, "ollama_host", None)),
        hub=hub,
        settings=settings,
        preselected=list(getattr(args, "models", None) or []),
        theme=theme,
        ollama_host=getattr(args, "ollama_host", None),
        sample_interval=interval,
        start=getattr(args, "start", None) or "dashboard",
        models_dirs=list(getattr(args, "models_dir", None) or []),
        data_dir=data_dir(getattr(args, "data_dir", None)),
    )


def run_app(args: Any) -> int:
    """Run the dashboard until the user quits; 0 on a normal exit, 2 when it cannot start."""
    try:
        app = build_app(args)
    except ValueError as exc:
        print(f"llmbench: {exc}", file=sys.stderr)
        return 2
    if app.hub is not None:
        app.hub.start()
    try:
        app.run(mouse=not _no_mouse(getattr(args, "no_mouse", None)))
    finally:
        if app.hub is not None:
            app.hub.stop()
        app.store.close()
    return app.return_code or 0
