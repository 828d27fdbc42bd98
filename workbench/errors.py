"""The error hierarchy of jupyter-ml-workbench.

Every error the product raises on purpose derives from :class:`WorkbenchError` and
carries the offending value and a ``hint`` — the thing to run or change next::

    WorkbenchError
    ├── SpecError            bad input: a spec field, a flag, a profile name (CLI exit 2, HTTP 400)
    ├── NotFound             no workload / profile / cluster by that name      (exit 2, HTTP 404)
    ├── Conflict             the request contradicts current state             (exit 2, HTTP 409)
    ├── PermissionDenied     the backend refused us                            (exit 2, HTTP 403)
    ├── BackendUnavailable   the backend cannot be reached or is not set up    (exit 2, HTTP 503)
    ├── StoreError           the store is corrupt, read-only, on a full disk   (exit 2, HTTP 503)
    ├── Timeout              waiting for a workload ran out of time            (exit 1)
    └── WorkloadFailed       the workload ran and failed                       (exit 1)

Adapters map these once (CLI, REST, magics); nothing below the adapters prints.
"""

from __future__ import annotations

from typing import Any


class WorkbenchError(Exception):
    """Root of every error raised on purpose by workbench.

    Args:
        message: what is wrong, in one line.
        value: the bad value, if there is one.
        hint: what to do next (a command to run, a field to change).
    """

    exit_code = 2
    http_status = 400

    def __init__(self, message: str, *, value: Any = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.value = value
        self.hint = hint

    def one_line(self) -> str:
        """The message and its hint on one line, as the CLI and the magics show it."""
        text = self.message
        if self.hint:
            text = f"{text} — {self.hint}"
        return text.replace("\n", " ")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form, for the REST API."""
        return {
            "error": type(self).__name__,
            "message": self.message,
            "value": None if self.value is None else str(self.value),
            "hint": self.hint,
        }

    def __str__(self) -> str:
        return self.one_line()


class SpecError(WorkbenchError):
    """A spec, flag or setting is invalid; nothing was created.

    Args:
        fields: every bad field of a spec, ``{"field": "resources.memory", "message": …}`` (the
            dotted path in the spec, "" for the spec as a whole; the message in words a form
            shows next to the field), when the error comes from validating one.
    """

    def __init__(
        self,
        message: str,
        *,
        value: Any = None,
        hint: str | None = None,
        fields: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message, value=value, hint=hint)
        self.fields = list(fields or [])

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "fields": self.fields}


class NotFound(WorkbenchError):
    """No such workload (or profile, cluster, run)."""

    http_status = 404


class Conflict(WorkbenchError):
    """The request contradicts the current state (name taken, workload still running)."""

    http_status = 409


class PermissionDenied(WorkbenchError):
    """The backend refused the request."""

    http_status = 403


class BackendUnavailable(WorkbenchError):
    """The backend is not installed, not configured or not reachable."""

    http_status = 503


class StoreError(WorkbenchError):
    """The state store cannot be read or written: corrupt, read-only, on a full disk, locked.

    Args:
        reason: one of ``corrupt``, ``read-only``, ``full``, ``locked``, ``unavailable``.
    """

    http_status = 503

    def __init__(self, message: str, *, reason: str, value: Any = None, hint: str | None = None) -> None:
        super().__init__(message, value=value, hint=hint)
        self.reason = reason


class Timeout(WorkbenchError):
    """Waiting for a workload took longer than allowed."""

    exit_code = 1
    http_status = 504


class WorkloadFailed(WorkbenchError):
    """The workload ran and did not succeed.

    Args:
        workload_id: the failed workload.
        exit_code: the process exit code, when there is one.
        detail: the failing cell, rank or last error line, when known.
    """

    exit_code = 1
    http_status = 409

    def __init__(
        self,
        message: str,
        *,
        workload_id: str,
        exit_code: int | None = None,
        detail: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, value=workload_id, hint=hint)
        self.workload_id = workload_id
        self.process_exit_code = exit_code
        self.detail = detail
