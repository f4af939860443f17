"""Subcommands: one module each, exposing build_parser(prog) and main(args)."""
