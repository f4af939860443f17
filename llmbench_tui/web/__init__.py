"""``llmbench serve``: the dashboard in a browser (textual-serve) with read-only JSON and metrics.

- ``api``: pure handlers, query parameters -> ``RunQuery`` -> JSON documents (no aiohttp).
- ``metrics``: the Prometheus text exposition of the stored runs.
- ``server``: textual-serve's ``Server`` with those routes added to its aiohttp application.
"""
