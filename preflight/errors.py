"""The exception tree of dw-preflight.

    PreflightError
    ├── UsageError            bad command-line arguments (exit 2)
    ├── ConfigError           a config file that cannot be used (exit 2)
    ├── RegistryError         check packs that cannot be loaded together (exit 2)
    ├── SimulatorError        the local simulator could not start
    ├── InNetworkError        an in-network run could not be submitted, followed or read back
    │   └── LogFormatError    a node log without exactly one complete marked observations line
    └── CloudError            a cloud API call failed (carried into a result, never raised to the CLI)
"""

from __future__ import annotations


class PreflightError(Exception):
    """Base of every error this tool raises on purpose."""


class UsageError(PreflightError):
    """The command line asks for something that cannot be done."""


class ConfigError(PreflightError):
    """The config file is missing, malformed or inconsistent."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.detail = message
        location = ""
        if path is not None:
            location = f"{path}:{line}: " if line is not None else f"{path}: "
        where = f"{field}: " if field else ""
        super().__init__(f"{location}{where}{message}")


class RegistryError(PreflightError):
    """Check packs declare duplicate ids or depend on checks that do not exist."""


class SimulatorError(PreflightError):
    """The local simulator could not start or was asked for an unknown scenario."""


class InNetworkError(PreflightError):
    """The collector could not be run in the resource group, or its output could not be read."""


class LogFormatError(InNetworkError):
    """A node log does not hold exactly one complete PREFLIGHT-OBSERVATIONS line."""


class CloudError(PreflightError):
    """A cloud API call failed; carries what a result needs to explain it."""

    def __init__(self, message: str, *, code: str = "", status_code: int | None = None,
                 request_id: str = "", action: str = "", auth_action: str = "",
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status_code = status_code
        self.request_id = request_id
        self.action = action
        self.auth_action = auth_action
        self.retry_after_s = retry_after_s  # how long a throttled call was told to wait (x-acs-retry-after)


# The CloudError code of a call that was never sent because the tool could not use the SDK: a generated client that
# is not installed, or a request its model does not take. No API answered; the tool broke.
SDK_UNUSABLE = "SdkUnusable"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_BROKEN = 3
# What a shell reports for a process ended by SIGPIPE: the reader of the output went away (`| head`).
EXIT_READER_GONE = 141
