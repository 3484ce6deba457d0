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


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM stopped the work; the message says how far it got, in one line.

    A :class:`KeyboardInterrupt`, so whatever cleans up on Ctrl-C does so on SIGTERM too. The
    command line prints it on one line and exits with :attr:`exit_code`.

    Parameters
    ----------
    signum : int
        The signal: 2 (SIGINT, Ctrl-C) or 15 (SIGTERM).
    done, total : int, optional
        Replications of the stopped cell that finished, and that it was to run.
    checkpointed : int, optional
        Of those, the ones saved in the cell's checkpoint, which a rerun reuses (``None``: the
        cell keeps no checkpoint).
    cells : tuple of int, optional
        In a sweep: the cells that finished, and the sweep's cells.
    """

    def __init__(
        self,
        signum: int = 2,
        done: int | None = None,
        total: int | None = None,
        checkpointed: int | None = None,
        cells: tuple[int, int] | None = None,
    ) -> None:
        self.signum, self.done, self.total, self.checkpointed = signum, done, total, checkpointed
        self.cells = cells
        super().__init__(signum, done, total, checkpointed, cells)

    @classmethod
    def of(cls, exc: BaseException) -> Interrupted:
        """Return ``exc`` if it is one, else the interruption a bare :class:`KeyboardInterrupt` stands for."""
        return exc if isinstance(exc, Interrupted) else cls()

    def counted(self, done: int, total: int, checkpointed: int | None) -> Interrupted:
        """Return this interruption with the stopped cell's counts."""
        return Interrupted(self.signum, done, total, checkpointed, self.cells)

    def in_sweep(self, finished: int, cells: int) -> Interrupted:
        """Return this interruption of a sweep's cell as the sweep's: ``finished`` of ``cells`` done."""
        return Interrupted(self.signum, self.done, self.total, self.checkpointed, (finished, cells))

    @property
    def exit_code(self) -> int:
        """Return the shell's code for a process ended by the signal: 130 (SIGINT), 143 (SIGTERM)."""
        return 128 + self.signum

    def __str__(self) -> str:
        """``interrupted after 1,160 of 100,000 replications; 1,160 checkpointed; rerun ...``."""
        head = "interrupted"
        if self.cells is not None:
            head += f" with {self.cells[0]:,} of {self.cells[1]:,} cells finished"
        if self.done is None or self.total is None:
            return (
                f"{head}; rerun the same command to go on (finished cells are reused, tracked "
                "Monte Carlo cells resume from their checkpoints)"
            )
        head += " and the running cell" if self.cells is not None else ""
        head += f" after {self.done:,} of {self.total:,} replications"
        if self.checkpointed is None:
            return (
                f"{head}; nothing checkpointed (only Monte Carlo cells tracked in MLflow keep "
                "checkpoints); rerun the same command to start again"
            )
        again = "resume" if self.checkpointed else "start again"
        return f"{head}; {self.checkpointed:,} checkpointed; rerun the same command to {again}"
