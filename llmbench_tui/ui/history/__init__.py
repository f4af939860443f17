"""The history screen and what it is made of.

- ``screen``: ``HistoryScreen``, the table of every stored run and its keys.
- ``columns``: the table's columns and cells; ``grouping``: pure grouping and grouped means.
- ``filters``, ``rerun``: the filter set and the re-run request the screen dismisses with.
- ``modals``: the confirm, filter and export dialogs; ``widgets``: the table, search box, footer.
- ``app``: ``llmbench history --tui``, the screen as an app of its own.

The screen opens the run detail, compare and trends views (``ui/run_detail``, ``ui/compare_view``,
``ui/trends``), which import nothing from here.
"""

from .app import HistoryApp, run_history_app
from .columns import COLUMN_BY_KEY, COLUMNS, STATUS_STYLE, Cell, Column
from .filters import Filters
from .grouping import GROUP_MODES, Group, group_cell, group_key, group_runs
from .modals import EXPORT_FORMATS, ConfirmScreen, ExportScreen, FilterScreen
from .rerun import RerunRequest, rerun_request
from .screen import DEBOUNCE_S, PAGE, HistoryScreen
from .widgets import KeyFooter, RunTable, SearchInput

__all__ = [
    "COLUMNS",
    "COLUMN_BY_KEY",
    "DEBOUNCE_S",
    "EXPORT_FORMATS",
    "GROUP_MODES",
    "PAGE",
    "STATUS_STYLE",
    "Cell",
    "Column",
    "ConfirmScreen",
    "ExportScreen",
    "FilterScreen",
    "Filters",
    "Group",
    "HistoryApp",
    "HistoryScreen",
    "KeyFooter",
    "RerunRequest",
    "RunTable",
    "SearchInput",
    "group_cell",
    "group_key",
    "group_runs",
    "rerun_request",
    "run_history_app",
]
