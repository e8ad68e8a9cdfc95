"""The report-format interface: a format renders a run to text and never writes files."""

from __future__ import annotations

import abc

from preflight.errors import PreflightError
from preflight.model import RunReport


class ReportError(PreflightError):
    """A report could not be rendered or written."""


class ReportFormat(abc.ABC):
    """One output format: a name, the file it is written to, and a pure render function."""

    name: str = ""
    filename: str = ""

    @abc.abstractmethod
    def render(self, run: RunReport) -> str:
        """The whole document for `run`."""


__all__ = ["ReportError", "ReportFormat"]
