"""Copy to the system clipboard through the terminal (OSC 52), which also works over SSH.

``App.copy_to_clipboard`` writes the OSC 52 sequence; this wrapper adds what a user needs to know:
what was copied and how big it was, and that some terminals (and tmux without
``set -g set-clipboard on``) cap or ignore OSC 52 payloads, so a large copy may not arrive.
"""

from __future__ import annotations

from textual.app import App

OSC52_COMFORT_BYTES = 100_000  # xterm's default limit is around this; many terminals allow more


def copy_text(app: App, text: str, what: str) -> None:
    """Put ``text`` on the clipboard and tell the user what was copied."""
    if not text:
        app.notify(f"Nothing to copy: the {what} is empty.", severity="warning")
        return
    app.copy_to_clipboard(text)
    size = len(text.encode("utf-8"))
    message = f"Copied the {what} ({size:,} bytes) to the clipboard (OSC 52)."
    if size > OSC52_COMFORT_BYTES:
        message += " Some terminals drop copies this large."
    app.notify(message)
