"""The exceptions sdekit raises for bad input.

Every check of a user's argument, file or configuration raises an :class:`InputError`
(a ``ValueError``) or an :class:`InputTypeError` (also a ``TypeError``), with a message
naming the argument and what was expected. The recipes' command line turns exactly these
into one ``error:`` line and exit status 2; any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations

__all__ = ["InputError", "InputTypeError"]


class InputError(ValueError):
    """A bad value given to sdekit: the message names the argument and what was expected."""


class InputTypeError(InputError, TypeError):
    """An argument of the wrong type (also a ``TypeError``)."""
