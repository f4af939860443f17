"""Suite-wide fixtures. ``tests/`` is on sys.path (no ``__init__.py``), so the fixture modules
of each part are imported here by name; pytest collects the fixtures they define."""

from fixtures_llama import llama_server, smollm_path  # noqa: F401
from fixtures_ollama import dead_url, ollama_backend, ollama_server  # noqa: F401
from pg_server import pg_server, pg_url  # noqa: F401
