"""The one exception type of the data layer."""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset file or array is missing, unreadable or inconsistent.

    A ``ValueError`` so that callers (and the ``rlgen`` CLI) can report it without a traceback; the message
    always names the file or array, the key and what was expected.
    """
