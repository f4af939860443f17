"""Command-line entry point: the dashboard by default, ``--batch`` headless, and subcommands.

``llmbench`` alone opens the dashboard; ``llmbench --batch [SUITE]`` runs the same engine with no
UI; ``llmbench history|show|export|import|compare|report|delete|doctor|calibrate|score ...`` work
on the stored results. Subcommands live in ``commands/`` (one module each, imported only when
used, so ``--batch`` never pays for Textual and the dashboard never pays for the exporters).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import TYPE_CHECKING

from . import __version__
from .config import DEFAULT_MAX_TOKENS

if TYPE_CHECKING:  # the dashboard need not import the commands' helpers to start
    from .commands.common import ArgumentAdder

SUBCOMMANDS = {
    "history": "history",
    "show": "show",
    "export": "export",
    "import": "import_",
    "compare": "compare",
    "delete": "delete",
    "doctor": "doctor",
    "calibrate": "calibrate",
    "serve": "serve",
    "score": "score",
    "judge": "judge",
    "report": "report",
    "fit": "fit",
    "pull": "pull",
    "store": "store_",
}



def _float_pos(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _int_min(minimum: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The options of the dashboard and ``--batch``, in groups (``llmbench --help``)."""
    p = argparse.ArgumentParser(
        prog="llmbench",
        description="Benchmark local language models. Without --batch, opens the dashboard. "
        "Subcommands: " + ", ".join(SUBCOMMANDS) + " (llmbench SUBCOMMAND --help).",
    )
    p.add_argument("--version", action="version", version=f"llmbench {__version__}")
    p.add_argument("--batch", action="store_true", help="run headless: no UI, summary on stdout")
    p.add_argument("suite", nargs="?", help="a TOML suite file (see examples/)")
    _models_and_prompts(p.add_argument_group("models and prompts"))
    _workload(p.add_argument_group("workload (size grids, sweeps, open-loop load)"))
    _output(p.add_argument_group("output and storage"))
    _quality(p.add_argument_group("answer quality"))
    _conditions(p.add_argument_group("run conditions and telemetry"))
    _gate(p.add_argument_group("regression gate"))
    _dashboard(p.add_argument_group("dashboard"))
    return p


def _models_and_prompts(g: ArgumentAdder) -> None:
    g.add_argument("-m", "--model", action="append", default=[], metavar="SPEC",
                   help="ollama:NAME[@HOST], openai:NAME@BASE_URL, gguf:PATH or embedded "
                   "(repeatable; overrides the suite's models)")
    g.add_argument("-p", "--prompt", action="append", default=[], metavar="TEXT",
                   help="a prompt (repeatable; overrides the suite's prompts)")
    g.add_argument("--system", help="system prompt")
    g.add_argument("-n", "--repetitions", type=_int_min(1), help="measured runs per prompt")
    g.add_argument("--warmup", type=_int_min(0), help="warm-up runs per model (default 1)")
    g.add_argument("--cold", type=_int_min(0), help="cold runs per model (model unloaded first)")
    g.add_argument("--timeout", type=_float_pos, metavar="S",
                   help="sets both --ttft-timeout and --stall-timeout")
    g.add_argument("--ttft-timeout", type=_float_pos, metavar="S")
    g.add_argument("--stall-timeout", type=_float_pos, metavar="S")
    g.add_argument("--temperature", type=float)
    g.add_argument("--top-k", type=int)
    g.add_argument("--top-p", type=float)
    g.add_argument("--seed", type=int, help="the model's sampling seed")
    g.add_argument("--max-tokens", type=_int_min(1),
                   help=f"max output tokens (default {DEFAULT_MAX_TOKENS} when no suite sets it)")
    g.add_argument("--num-ctx", type=_int_min(64), help="context size")
    g.add_argument("--keep-alive", help="Ollama keep_alive, e.g. 10m, 0, -1")
    think = g.add_mutually_exclusive_group()
    think.add_argument("--think", dest="think", action="store_const", const=True,
                       help="ask thinking models to think")
    think.add_argument("--no-think", dest="think", action="store_const", const=False)
    g.add_argument("--ollama-host", help="default Ollama host (env OLLAMA_HOST)")


def _workload(g: ArgumentAdder) -> None:
    g.add_argument("-c", "--concurrency", metavar="N_OR_LIST",
                   help="simultaneous streams per model; a list (1,2,4,8) sweeps the levels")
    g.add_argument("--pp", metavar="LIST", help="size grid: prompt tokens per cell, e.g. "
                   "64,512,2048 or llama-bench ranges 64-2048*2, 0-4096+1024")
    g.add_argument("--tg", metavar="LIST", help="size grid: tokens to generate (default 128)")
    g.add_argument("--depth", metavar="LIST",
                   help="size grid: tokens of earlier context before the prompt (default 0)")
    g.add_argument("--slo", action="append", default=[], metavar="RULE",
                   help='service-level objective for goodput, e.g. "ttft_s<=0.5" (repeatable)')
    g.add_argument("--api", choices=("completions", "chat"),
                   help="size grid: send each prompt as a raw completion (default, no chat "
                   "template) or as a chat request's user message (pp counts the user part)")
    from .commands.openloop import add_load_flags

    add_load_flags(g)  # --rate, --arrival, --duration, --requests, --arrival-seed, --workers
    g.add_argument("--prefix-cache", action="store_true",
                   help="size grid: send each prompt twice and report the cache-reusing run apart")
    g.add_argument("--localscore", action="store_true",
                   help="run Mozilla LocalScore's nine shapes and score with its formula")


def _output(g: ArgumentAdder) -> None:
    g.add_argument("--tag", action="append", default=[], help="tag stored with every run")
    g.add_argument("--json", metavar="PATH", help="write the run records as a JSON array")
    g.add_argument("--csv", metavar="PATH", help="write one CSV row per run")
    g.add_argument("--markdown", metavar="PATH", help="write the summary table as Markdown")
    g.add_argument("--data-dir", help="where history.json lives (env LLMBENCH_DATA_DIR)")
    g.add_argument("--no-store", action="store_true", help="do not write to the database")
    from .commands.common import add_store_flag

    add_store_flag(g)  # --store URL_OR_PATH


def _quality(g: ArgumentAdder) -> None:
    g.add_argument("--allow-code-exec", action="store_true",
                   help="run the tests of python checks (sandboxed subprocess); "
                   "also allow_code_exec = true in a suite")
    from .commands.judge import add_judge_flags  # --judge, --judge-repeats, --rubric

    add_judge_flags(g, required=False)


def _conditions(g: ArgumentAdder) -> None:
    g.add_argument("--sample-interval", type=_float_pos, default=0.25, metavar="S",
                   help="telemetry sampling interval in seconds (default 0.25)")
    g.add_argument("--server-pid", metavar="PID_OR_NAME",
                   help="the serving process to sample for OpenAI-compatible servers "
                   "(env LLMBENCH_SERVER_PID); Ollama's and this process are found by themselves")
    from .commands.conditions import add_condition_flags

    add_condition_flags(g)  # --wait-idle, --telemetry-url


def _gate(g: ArgumentAdder) -> None:
    g.add_argument("--baseline", metavar="SESSION_OR_FILE",
                   help="compare against a stored session id or an exported JSON/JSONL file")
    g.add_argument("--fail-if", action="append", default=[], metavar="RULE",
                   help='regression gate, e.g. "decode_tok_s<-10%%" or "ttft_s>+20%%" (against '
                   '--baseline) or an absolute "score<7"; exit 3')
    g.add_argument("--report-html", metavar="PATH",
                   help="with --fail-if: write the HTML report of this session against the "
                   "baseline (llmbench report) to PATH")


def _dashboard(g: ArgumentAdder) -> None:
    g.add_argument("--models-dir", action="append", default=[], metavar="DIR",
                   help="a folder of .gguf files for the dashboard's file picker (f; repeatable)")
    g.add_argument("--theme", help="dashboard theme")
    mouse = g.add_mutually_exclusive_group()
    mouse.add_argument("--no-mouse", dest="no_mouse", action="store_const", const=True,
                       help="leave the mouse to the terminal (default over SSH)")
    mouse.add_argument("--mouse", dest="no_mouse", action="store_const", const=False)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in SUBCOMMANDS:
        name, rest = argv[0], argv[1:]
        if name == "history" and "--tui" in rest:
            return _history_tui(rest)
        module = importlib.import_module(f"llmbench_tui.commands.{SUBCOMMANDS[name]}")
        args = module.build_parser(f"llmbench {name}").parse_args(rest)
        return module.main(args)
    args = build_parser().parse_args(argv)
    if args.batch:
        from .commands.batch import run_batch

        return run_batch(args)
    from .ui.app import run_app

    args.models = args.model
    args.start = "dashboard"
    return run_app(args)


def _history_tui(rest: list[str]) -> int:
    p = argparse.ArgumentParser(prog="llmbench history --tui")
    p.add_argument("--tui", action="store_true")
    p.add_argument("--data-dir")
    p.add_argument("--store")
    args, _ = p.parse_known_args(rest)
    from .ui.history import run_history_app

    return run_history_app(args.data_dir, args.store)


if __name__ == "__main__":
    sys.exit(main())
