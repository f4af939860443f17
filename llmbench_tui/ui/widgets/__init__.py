"""Widgets of the dashboard: prompt, model picker, options, stream panes, meters, results."""
