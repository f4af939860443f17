"""Getting models from the dashboard: pull from Ollama, delete from Ollama, pick a GGUF file.

- ``PullDialog``: a name, then Ollama's streamed progress as a bar and a status line; Esc stops
  the pull (the stream is closed) and closes the dialog; a failure stays on screen as one
  sentence. It dismisses with the model's name once the pull has succeeded.
- ``ConfirmDelete``: y deletes, n or Esc keeps; dismisses with True or False.
- ``GGUFFiles``: every ``.gguf`` below the model folders (``--models-dir`` and the usual caches)
  with its fit on this machine; Enter dismisses with the file's path.

Names and paths come from servers and disks: shown as plain text, never markup.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Label, ProgressBar, Static

from ...backends.base import BackendError
from ...backends.ollama_models import PullProgress, pull
from ...fit.estimate import FitEstimate
from ...fit.files import gguf_files_in
from ...fit.listing import fit_one, machine_now
from ...safe_text import inert, strip_controls
from ...schema import ModelSpec
from ..discovery import human_size


class ModelDialog(ModalScreen):
    """A centred, keyboard-first modal, styled like the dashboard's other dialogs."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Close", id="close_dialog")]
    DEFAULT_CSS = """
    ModelDialog { align: center middle; }
    ModelDialog > Vertical {
        width: 90%; max-width: 110; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    ModelDialog Label.hint { color: $text-muted; }
    ModelDialog #gguf-table { height: auto; max-height: 20; }
    """


class PullDialog(ModelDialog):
    """Pull an Ollama model with a progress bar (module docstring)."""

    BINDINGS = [Binding("escape", "stop", "Cancel", id="close_dialog")]

    def __init__(self, host: str | None, where: str) -> None:
        super().__init__()
        self.host = host
        self.where = where
        self.pulling = False
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(f"Pull a model into Ollama at {strip_controls(self.where)}",
                             style="bold"))  # fmt: skip
            yield Input(placeholder="model name, e.g. qwen3:0.6b", id="pull-name")
            yield ProgressBar(total=100, show_eta=False, id="pull-progress")
            yield Static("", id="pull-status")
            yield Label("Enter pulls; Esc cancels the pull and closes.", classes="hint")

    def action_stop(self) -> None:
        self.workers.cancel_group(self, "pull")
        self.dismiss(None)

    @on(Input.Submitted, "#pull-name")
    def _submitted(self, event: Input.Submitted) -> None:
        name = event.value.strip()
        if name and not self.pulling:
            self.error = None
            self._pull(name)

    def _status(self, text: str, style: str = "") -> None:
        self.query_one("#pull-status", Static).update(Text(strip_controls(text), style=style))

    def _progress(self, progress: PullProgress) -> None:
        self.query_one(ProgressBar).update(progress=progress.fraction * 100)
        self._status(progress.line())

    @work(exclusive=True, group="pull")
    async def _pull(self, name: str) -> None:
        self.pulling = True
        self.query_one(ProgressBar).update(progress=0)
        self._status(f"{name}: starting")
        try:
            await pull(name, self.host, self._progress)
        except BackendError as exc:
            self.error = str(exc)
            self._status(f"✗ {exc}", "bold red")
            return
        finally:
            self.pulling = False
        self.dismiss(name)


class ConfirmDelete(ModelDialog):
    """Ask before deleting a model's files; dismisses with True (y) or False (n, Esc)."""

    BINDINGS = [
        Binding("escape,n", "dismiss(False)", "Keep", id="close_dialog"),
        Binding("y", "dismiss(True)", "Delete", id="confirm_delete"),
    ]

    def __init__(self, name: str, where: str) -> None:
        super().__init__()
        self.model_name = name
        self.where = where

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text.assemble(
                ("Delete ", "bold"), (strip_controls(self.model_name), "bold red"),
                (f" from Ollama at {strip_controls(self.where)}?", "bold"),
            ))  # fmt: skip
            yield Label("Its files are removed; pulling it again downloads it again.")
            yield Label("y deletes; n or Esc keeps it.", classes="hint")


class GGUFFiles(ModelDialog):
    """Every ``.gguf`` below ``folders`` with its fit; Enter dismisses with the chosen path."""

    def __init__(self, folders: list[Path], data_dir: Path | None) -> None:
        super().__init__()
        self.folders = folders
        self.data_dir = data_dir
        self.paths: list[Path] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            shown = ", ".join(strip_controls(str(f)) for f in self.folders) or "none found"
            yield Label(Text("GGUF files", style="bold"))
            yield Label(Text(f"in {shown}", style="dim"))
            table = DataTable(cursor_type="row", zebra_stripes=True, id="gguf-table")
            table.add_columns("fit", "file", "size", "max ctx", "decode ≤ (est.)", "folder")
            yield table
            yield Static(Text("looking for .gguf files…", style="dim italic"), id="gguf-status")
            yield Label("Enter adds the file to the models; Esc closes.", classes="hint")

    def on_mount(self) -> None:
        self._list()

    @work(exclusive=True, group="gguf-files")
    async def _list(self) -> None:
        import asyncio

        self.paths = await asyncio.to_thread(gguf_files_in, self.folders)
        table = self.query_one(DataTable)
        status = self.query_one("#gguf-status", Static)
        if not self.paths:
            status.update(Text("no .gguf file in these folders (--models-dir adds one)"))
            return
        status.update(Text(f"{len(self.paths)} files; estimating their fit…", style="dim"))
        machine = await machine_now(self.data_dir)
        for path in self.paths:
            spec = ModelSpec(backend="gguf", name=str(path))
            fit = await fit_one(spec, None, machine)
            size = path.stat().st_size if path.exists() else None
            if isinstance(fit, FitEstimate):
                best = fit.max_ctx.get(fit.verdict if fit.verdict != "none" else "cpu")
                cells = [
                    inert(fit.cell(), "bold"),
                    f"{best:,}" if best else "-",
                    f"{fit.decode_ceiling_tok_s:,.0f} tok/s" if fit.decode_ceiling_tok_s else "-",
                ]
            else:
                cells = [inert("?", "dim"), "-", inert(fit, "red")]
            table.add_row(
                cells[0],
                inert(path.name, "bold"),
                human_size(size),
                cells[1],
                cells[2],
                inert(str(path.parent), "dim"),
                key=str(path),
            )
        status.update(Text(f"{len(self.paths)} files (fit at the default context)", style="dim"))

    @on(DataTable.RowSelected)
    def _picked(self, event: DataTable.RowSelected) -> None:
        self.dismiss(str(event.row_key.value))
