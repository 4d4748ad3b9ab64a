"""Glue between Snakemake ``script:`` rules and the stage functions.

A rule's script only names the stage; this module sends messages to the rule's log, and turns a user error into
a one-paragraph message (file, row, column, value) and a failed job, instead of a traceback.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from typing import Any

from .cli import open_log
from .errors import OncofhirError


def run(snakemake: Any, stage: Callable[[], Any]) -> None:
    """Run ``stage()`` with stderr going to the rule's log; exit 1 with a readable message on failure."""
    log_path = snakemake.log[0]
    with open_log(log_path) as log:  # 0600: a log may name record ids
        sys.stderr = log
        try:
            result = stage()
        except OncofhirError as exc:
            print(f"oncofhir: error: {exc}", file=log)
            sys.__stderr__.write(f"oncofhir: error: {exc}\n(log: {log_path})\n")
            sys.exit(1)
        except KeyboardInterrupt:  # Ctrl-C: Snakemake's process group gets SIGINT; one line, as the CLI (cli.main)
            print("oncofhir: interrupted", file=log)
            sys.__stderr__.write("oncofhir: interrupted\n")
            sys.exit(130)
        except Exception:
            traceback.print_exc(file=log)
            sys.__stderr__.write(f"oncofhir: internal error, see {log_path}\n")
            sys.exit(1)
        finally:
            sys.stderr = sys.__stderr__
        if result is not None:
            print(result, file=log)
