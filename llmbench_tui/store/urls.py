"""Store locations that are database URLs: how to tell them, and how to show them (never with
their password)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

PG_SCHEMES = ("postgresql", "postgres")


def is_database_url(location: str | None) -> bool:
    return bool(location) and urlsplit(str(location)).scheme.lower() in PG_SCHEMES


def redact_url(url: str) -> str:
    """The URL without its password (and without a ``password=`` query parameter)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}@{host}"
    query = "&".join(p for p in parts.query.split("&") if not p.lower().startswith("password="))
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
