"""Glue between Snakemake ``script:`` rules and the stage functions.

A rule's script only names the stage; this module sends messages to the rule's log, and turns a user error into
a one-paragraph message (file, row, column, value) and a failed job, instead of a traceback.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from typing import Any

from .cli import _resource_error, open_log
from .errors import OncofhirError


def run(snakemake: Any, stage: Callable[[], Any]) -> None:
    """Run ``stage()`` with stderr going to the rule's log; on failure a readable message and the CLI's exit code
    (the error's: 3 for a dictionary, 4 for input data...; 70 for a bug), as the per-center stages' commands."""
    log_path = snakemake.log[0]
    with open_log(log_path) as log:  # 0600: a log may name record ids
        sys.stderr = log
        try:
            result = stage()
        except OncofhirError as exc:
            print(f"oncofhir: error: {exc}", file=log)
            sys.__stderr__.write(f"oncofhir: error: {exc}\n(log: {log_path})\n")
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:  # Ctrl-C: Snakemake's process group gets SIGINT; one line, as the CLI (cli.main)
            print("oncofhir: interrupted", file=log)
            sys.__stderr__.write("oncofhir: interrupted\n")
            sys.exit(130)
        except Exception as exc:
            resource = _resource_error(exc)  # a full disk or exhausted memory: one line and exit 5, as the CLI
            if resource is not None:
                print(f"oncofhir: error: {resource}", file=log)
                sys.__stderr__.write(f"oncofhir: error: {resource}\n(log: {log_path})\n")
                sys.exit(resource.exit_code)
            traceback.print_exc(file=log)
            sys.__stderr__.write(f"oncofhir: internal error, see {log_path}\n")
            sys.exit(70)
        finally:
            sys.stderr = sys.__stderr__
        if result is not None:
            print(result, file=log)
