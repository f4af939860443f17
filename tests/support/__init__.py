"""What the tests share: the Ollama-protocol test server, the llama.cpp server and model
fixtures, record generators, store and telemetry helpers, the UI pilot helpers and the serve
process. ``tests/`` is on ``sys.path`` (its ``conftest.py`` puts it there), so test modules
import ``support.<module>``; no test module imports another test module."""
