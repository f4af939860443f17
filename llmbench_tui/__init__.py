"""llmbench-tui: benchmark local language models from a terminal dashboard or headless."""

__version__ = "0.1.0"
