"""The command line: a thin layer over library functions (deleting it changes no behaviour).

Exit codes (documented in README): 0 success, 1 failed, 2 bad params or unusable input,
3 finished with degraded data.
"""

from __future__ import annotations

import argparse
import json
import sys

from capplan.errors import CapplanError, ConfigError, InsufficientData, ParseError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_DEGRADED = 0, 1, 2, 3


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=None, default=str, allow_nan=False))


# Each verb: add_<verb>(subparsers) registers arguments; cmd_<verb>(args) -> exit code.
# Sections are owned by the capability that provides the verb.

# --- foundation verbs (run, demo) ------------------------------------------------------------
# --- collection verbs (collect) ---------------------------------------------------------------
# --- growth verbs (forecast, runway) ----------------------------------------------------------
# --- scaling verbs (usl, sweep) ---------------------------------------------------------------
# --- operations verbs (fleet, alerts) ---------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="capplan", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    for name, obj in list(globals().items()):
        if name.startswith("add_") and callable(obj):
            obj(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, ParseError, InsufficientData) as exc:
        print(f"capplan {args.verb}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except CapplanError as exc:
        print(f"capplan {args.verb}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"capplan {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
