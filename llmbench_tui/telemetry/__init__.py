"""Telemetry: what the machine did while a run ran (CPU, GPU, power, memory bandwidth), the
machine itself, and how busy it was. Imports nothing from the engine; the engine and the store
import it."""
