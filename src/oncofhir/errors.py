"""User-facing errors.

Every error a user can cause (a bad dictionary, config, export) is an :class:`OncofhirError` whose message names
the file, row, column and value, so the CLI prints it without a traceback. Anything else is a bug.
"""

from __future__ import annotations


class OncofhirError(Exception):
    """An error caused by input the user can fix; printed without a traceback.

    ``exit_code`` follows the CLI's documented codes (2 usage/config, 3 dictionary, 4 input data, 5 out of
    resources).
    """

    exit_code = 1

    def __init__(self, message: str, *, path: str | None = None, details: list[str] | None = None) -> None:
        self.path = path
        self.details = list(details or [])
        super().__init__(message)

    def __str__(self) -> str:
        head = super().__str__()
        if self.path:
            head = f"{self.path}: {head}"
        if self.details:
            head += "".join(f"\n  - {d}" for d in self.details)
        return head


class ConfigError(OncofhirError):
    """The workflow configuration or centers sheet is invalid."""

    exit_code = 2


class DictionaryError(OncofhirError):
    """A data dictionary, mapping or ontology table is invalid; fails fast before any data is read."""

    exit_code = 3


class InputDataError(OncofhirError):
    """A center's export cannot be read at all (not a CSV, missing required columns...)."""

    exit_code = 4


class ResourceError(OncofhirError):
    """The machine ran out of a resource (disk space, quota, memory): nothing the input can fix; free it, rerun."""

    exit_code = 5
