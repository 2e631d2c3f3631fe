"""Typed failures so callers (the operator, the CLI) can report a reason instead of a traceback."""

from __future__ import annotations


class ForecastError(Exception):
    """Base class: the library refused to forecast; `reason` is a short, user-facing explanation."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InsufficientHistoryError(ForecastError):
    """Too little usable history: guessing would produce confident nonsense, so we refuse."""

    def __init__(self, need: str, have: str) -> None:
        super().__init__(f"InsufficientHistory: need {need}, have {have}")
        self.need = need
        self.have = have


class NotFittedError(ForecastError):
    """update()/forecast() called before fit()."""
