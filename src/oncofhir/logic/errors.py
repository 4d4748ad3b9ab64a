"""Errors raised by the REDCap logic engine.

Both carry structured fields (not only a message) because callers report them in their own context: the dictionary
linter names the dictionary row, the QC stage names the use case. Both pickle (their ``args`` match ``__init__``),
so they survive Snakemake's and multiprocessing's process boundaries.
"""

from __future__ import annotations


class LogicSyntaxError(ValueError):
    """A malformed logic expression.

    ``position`` is the 0-based character offset of the offending token in ``expression``, so an editor or a linter
    message can point at it; ``message`` is the bare reason without the location.
    """

    def __init__(self, message: str, expression: str, position: int) -> None:
        super().__init__(message, expression, position)
        self.message = message
        self.expression = expression
        self.position = position

    def __str__(self) -> str:
        return f'{self.message} at position {self.position} in "{self.expression}"'


class MissingVariableError(KeyError):
    """An expression references a column that the evaluated data does not have.

    A ``KeyError`` because it is a failed lookup, but with a readable ``str()`` (``KeyError`` would show a quoted
    repr). ``variable`` is the first missing column (alphabetically), ``missing`` all of them.
    """

    def __init__(self, variable: str, expression: str, missing: tuple[str, ...] = ()) -> None:
        missing = missing or (variable,)
        super().__init__(variable, expression, missing)
        self.variable = variable
        self.expression = expression
        self.missing = missing

    def __str__(self) -> str:
        names = ", ".join(repr(m) for m in self.missing)
        noun = "variable" if len(self.missing) == 1 else "variables"
        return f'{noun} {names} referenced by "{self.expression}" not in the data'
