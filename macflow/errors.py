"""``InputError``: bad user input (a file, a config option, a checkpoint), reported as one line with the fix.

Raise it with a message that names the file or option, the cause and the fix. ``python -m macflow`` prints the
message without a traceback and exits with status 2; library callers catch it as a ``ValueError``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

EXIT_INPUT_ERROR = 2
"""Exit status of a command stopped by an :class:`InputError` (as argparse uses for a bad command line)."""


class InputError(ValueError):
    """A file or option the user gave cannot be used; the message says which, why and how to fix it."""


def input_error_in(error: BaseException) -> InputError | None:
    """``error`` or the :class:`InputError` it was raised from or while handling (jsonargparse re-raises an
    error of a class it instantiates as its own ``ValueError``), else ``None``."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, InputError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def exit_on_input_error(command: Callable[[], T]) -> T:
    """Run ``command``; on an :class:`InputError` (also one wrapped by the config parser), print
    ``macflow: error: <message>`` to stderr and exit 2."""
    try:
        return command()
    except Exception as error:
        cause = input_error_in(error)
        if cause is None:
            raise
        print(f"macflow: error: {cause}", file=sys.stderr)
        raise SystemExit(EXIT_INPUT_ERROR) from None
