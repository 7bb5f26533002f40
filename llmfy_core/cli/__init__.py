"""The `llmfy` command: plugins, prices, the cost of a request, and file reports.

Exit codes, the same for every subcommand:

- 0: done.
- 1: part of the input could not be read (the rest was used), a plugin
  failed to load, or `LLMFY_PLUGINS` names a plugin that is not installed.
- 2: invalid or incomplete arguments, or an invalid price file, so nothing
  was computed. This includes an unknown provider or service tier, a
  misspelt region, a model whose provider cannot be guessed, and a model
  priced by region without --region.
- 3: the input was read, but a model has no price, so a cost is unknown or
  incomplete.
- 130: interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence

from llmfy_core import __version__

from . import cost_command, plugins_command, prices_command, report_command
from .output import EXIT_INTERRUPTED, EXIT_OK, RECORD_PLACE, CliError

__all__ = ["build_parser", "main"]

EPILOG = """\
exit codes:
  0    done
  1    part of the input could not be read (the rest was used), a plugin
       failed to load, or LLMFY_PLUGINS names a plugin that is not installed
  2    invalid or incomplete arguments or price file, so nothing was
       computed: an unknown provider or service tier, a misspelt region,
       a provider that cannot be guessed, a model priced by region without
       --region, or a model id that no price source knows and that
       misspells a listed one
  3    a model has no price, so a cost is unknown or incomplete
  130  interrupted
"""


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the `llmfy` command."""
    parser = argparse.ArgumentParser(
        prog="llmfy",
        description="Inspect llmfy's plugins and prices, and total LLM usage and cost.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"llmfy {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    plugins_command.add_parser(commands)
    prices_command.add_parser(commands)
    cost_command.add_parser(commands)
    report_command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `llmfy` command on `argv`; return its exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else EXIT_OK
    handler = _log_to_stderr()
    try:
        # The llmfy loggers carry every warning message; Python's warnings
        # would print the same text a second time, with a source line.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            code: int = args.run(args)
        return code
    except CliError as error:
        print(f"llmfy {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("llmfy: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of stdout (`| head`) has gone; that is not an error.
        sys.stderr.close()
        return EXIT_OK
    finally:
        logging.getLogger("llmfy").removeHandler(handler)


def _log_to_stderr() -> logging.Handler:
    """Show llmfy's warnings on stderr while the command runs."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("llmfy: %(levelname)s: %(message)s"))
    handler.addFilter(RECORD_PLACE)
    logging.getLogger("llmfy").addHandler(handler)
    return handler
