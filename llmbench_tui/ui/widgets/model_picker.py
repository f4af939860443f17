"""The model multi-select: a filter box over a ``SelectionList`` of every discovered model.

The chosen set is kept here (``chosen``, spec labels), not only in the list, because filtering
rebuilds the list's rows and must not forget what was ticked. Sources that could not be asked
appear as disabled rows carrying the backend's sentence, so an empty list always says why.
Names come from servers and files: rows are built from ``Text`` objects, never markup.

The fit column (``llmbench_tui.fit``) arrives after the listing, once each model's shape has been
read: GPU / part N/M (layers on the GPU) / CPU / no, or ``?`` when the source does not say enough.
The line under the list explains the highlighted model's estimate in one sentence.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, SelectionList, Static
from textual.widgets.selection_list import Selection

from ...backends.base import ModelInfo
from ...fit.estimate import FitEstimate
from ...safe_text import inert, strip_controls
from ..discovery import Source, human_size

FIT_STYLES = {"GPU": "bold green", "CPU": "yellow", "no": "bold red"}

# What the picker knows of a model's fit: the estimate, or the sentence saying why there is none.
Fit = FitEstimate | str


def fit_cell(fit: Fit | None) -> Text:
    """The fit column: a fixed-width cell so the names after it line up."""
    if fit is None:
        return Text("…".ljust(11), style="dim")
    if isinstance(fit, str):
        return Text("?".ljust(11), style="dim")
    label = fit.cell()
    return Text(label.ljust(11), style=FIT_STYLES.get(label, "cyan"))


def fit_sentence(fit: Fit | None) -> str:
    if fit is None:
        return "fit: estimating…"
    if isinstance(fit, str):
        return f"fit: unknown — {fit}"
    return f"fit (estimate): {fit.sentence()}"


def model_row(info: ModelInfo, fit: Fit | None = None) -> Text:
    """``name  fit  size  params  quant  family  backend@host  ● loaded`` as inert text."""
    spec = info.spec
    row = Text(no_wrap=True, overflow="ellipsis")
    row.append(strip_controls("embedded" if spec.embedded else info.name), style="bold")
    row.append("  ")
    row.append_text(fit_cell(fit))
    where = spec.backend
    if spec.host:
        where += "@" + spec.host.removeprefix("http://").removeprefix("https://")
    details = [
        human_size(info.size_bytes),
        info.parameter_size or "-",
        info.quantization or "-",
        info.family or "-",
        where,
    ]
    row.append("  ".join(strip_controls(d) for d in details), style="dim")
    if info.loaded:
        row.append("  ● loaded", style="green")
    return row


class ModelPicker(Vertical):
    """Filter box + selection list; ``chosen`` is the ordered list of ticked spec labels."""

    DEFAULT_CSS = """
    ModelPicker { height: auto; }
    ModelPicker > Input { margin: 0; }
    ModelPicker > SelectionList { height: auto; max-height: 8; min-height: 3; }
    ModelPicker > #fit-detail { height: auto; max-height: 4; color: $text-muted; }
    """

    def __init__(self, preselected: list[str] | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.sources: list[Source] = []
        self.chosen: list[str] = list(preselected or [])
        self._rows: list[tuple[str, Text, bool]] = []  # (value, prompt, enabled)
        self.fits: dict[str, Fit] = {}  # spec label -> estimate (or why there is none)

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter models (/)", compact=True, id="model-filter")
        yield SelectionList[str](id="model-list")
        yield Static("", id="fit-detail")

    def on_mount(self) -> None:
        self.query_one(SelectionList).border_title = "Models (space: tick)"
        self.set_loading_text()

    def set_loading_text(self) -> None:
        self._rows = [("", Text("looking for models…", style="dim italic"), False)]
        self._rebuild()

    def set_sources(self, sources: list[Source]) -> None:
        """Show what discovery found; spec labels given on the command line stay available."""
        self.sources = sources
        rows: list[tuple[str, Text, bool]] = []
        known: set[str] = set()
        for source in sources:
            for info in source.models:
                rows.append(
                    (info.spec.label, model_row(info, self.fits.get(info.spec.label)), True)
                )
                known.add(info.spec.label)
            if source.error:
                msg = Text()  # wraps: the sentence is the point of the row
                msg.append(f"✗ {source.kind} {strip_controls(source.where)}: ", style="bold red")
                msg.append(strip_controls(source.error), style="red")
                rows.append((f"!{source.kind}:{source.where}", msg, False))
        for label in self.chosen:
            if label not in known:
                shown = strip_controls(label)
                rows.insert(0, (label, Text.assemble((shown, "bold"), ("  (given)", "dim")), True))
        self._rows = rows
        self._rebuild()

    def _rebuild(self) -> None:
        needle = self.query_one("#model-filter", Input).value.strip().lower()
        listing = self.query_one(SelectionList)
        highlighted = listing.highlighted
        listing.clear_options()
        listing.add_options(
            [
                Selection(prompt, value, value in self.chosen, disabled=not enabled)
                for value, prompt, enabled in self._rows
                if not needle or needle in prompt.plain.lower()
            ]
        )
        if listing.option_count:
            # Always a highlighted row, so the first Space ticks something (OptionList starts
            # with none, and Space then does nothing — confusing on a keyboard-only screen).
            listing.highlighted = min(highlighted or 0, listing.option_count - 1)

    def infos(self) -> list[ModelInfo]:
        return [info for source in self.sources for info in source.models]

    def set_fits(self, fits: dict[str, Fit]) -> None:
        """Show the fit column (estimates computed off the event loop by the dashboard)."""
        self.fits = dict(fits)
        self.set_sources(self.sources)
        self._show_detail()

    def highlighted_label(self) -> str | None:
        listing = self.query_one(SelectionList)
        if listing.highlighted is None:
            return None
        value = listing.get_option_at_index(listing.highlighted).value
        return str(value) if value and not str(value).startswith("!") else None

    @on(SelectionList.SelectionHighlighted)
    def _show_detail(self) -> None:
        label = self.highlighted_label()
        known = {info.spec.label for info in self.infos()}
        text = fit_sentence(self.fits.get(label)) if label in known else ""
        self.query_one("#fit-detail", Static).update(Text(strip_controls(text)))

    @on(Input.Changed, "#model-filter")
    def _filter(self) -> None:
        self._rebuild()

    @on(Input.Submitted, "#model-filter")
    def _to_list(self) -> None:
        listing = self.query_one(SelectionList)
        listing.focus()
        if listing.highlighted is None and listing.option_count:
            listing.highlighted = 0

    @on(SelectionList.SelectionToggled)
    def _toggled(self, event: SelectionList.SelectionToggled) -> None:
        value = event.selection.value
        if value in self.chosen:
            self.chosen.remove(value)
        else:
            self.chosen.append(value)

    def choose(self, labels: list[str]) -> None:
        """Tick exactly ``labels`` (a re-run from the history screen)."""
        self.chosen = list(labels)
        known = {v for v, _, _ in self._rows}
        for label in labels:
            if label not in known:
                self._rows.insert(0, (label, inert(label, style="bold"), True))
        self._rebuild()
