"""Suite-wide fixtures. ``tests/`` has no ``__init__.py``, so pytest puts it on ``sys.path`` when
it loads this file: every test module, at any depth, imports the shared helpers as
``support.<module>``. The fixture modules are imported here by name; pytest collects the
fixtures they define."""

from support.fixtures_llama import llama_cpp_server, llama_server, smollm_path  # noqa: F401
from support.fixtures_ollama import dead_url, ollama_backend, ollama_server  # noqa: F401
from support.pg_server import pg_server, pg_url  # noqa: F401
