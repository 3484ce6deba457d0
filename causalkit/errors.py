"""Error types whose messages are shown to users as a single line."""

from __future__ import annotations


class CausalkitError(Exception):
    """Base class for every user-facing causalkit error.

    The CLI prints ``str(error)`` on one line and exits with code 2; no traceback.
    """


class ConfigError(CausalkitError):
    """A configuration value is missing, unknown or of the wrong kind.

    Parameters
    ----------
    field : str
        Dotted path of the offending key, e.g. ``"estimator.weight_method"``.
    expected : str
        What is allowed, in words.
    got : object
        What was given.
    """

    def __init__(self, field: str, expected: str, got: object) -> None:
        self.field = field
        self.expected = expected
        self.got = got
        super().__init__(f"{field}: expected {expected}, got {got!r}")


class DataError(CausalkitError):
    """The data do not fit the roles or the estimator's requirements.

    Parameters
    ----------
    field : str
        The role or column at fault, e.g. ``"roles.treatment"``.
    expected : str
        What is required.
    got : object
        What was found.
    """

    def __init__(self, field: str, expected: str, got: object) -> None:
        self.field = field
        self.expected = expected
        self.got = got
        super().__init__(f"{field}: expected {expected}, got {got}")


class PluginError(CausalkitError):
    """A plugin is unknown, malformed, or cannot be combined with another."""


class EstimationError(CausalkitError):
    """The estimator could not produce an estimate (numerical failure)."""
