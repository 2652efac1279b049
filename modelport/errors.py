"""ModelPort's exception hierarchy: every error it raises on purpose derives from `ModelPortError`, in
one of four kinds that callers treat differently. Anything else that escapes is a bug.

- `UserError`: the input, configuration or query is wrong (a bad `[[sources]]` option, a query that
  does not parse, a cursor from another query). The CLI exits 2, the API answers 4xx, with the message.
- `SourceError`: a remote registry misbehaved or cannot be reached (bad status, malformed listing,
  timeouts). The harvest of that source fails or stops with the message; other sources go on.
- `BadRecordError`: one record's content cannot be used (malformed, over a bound). The record is
  skipped and counted in the job's bounded, grouped report; the harvest goes on.
- `ServiceUnavailable`: something this process depends on is not there right now (the search server,
  the data directory held by another process, an optional extra not installed). The CLI exits 1, the
  API answers 503.

A bug (any other exception, e.g. a mapper raising `KeyError` or `ValueError` on a record) fails the
job loudly, naming the record (modelport/job_report.py `RecordFailure`); it is never counted as a
skip. This module imports nothing, so harvesters, schema and index modules can all use it.

Several classes keep their historical built-in base beside their kind (`QuerySyntaxError` is also a
`ValueError`), so existing `except ValueError` sites keep working.
"""

from __future__ import annotations


class ModelPortError(Exception):
    """The root of every error ModelPort raises on purpose."""

    exit_code = 1  # what the CLI exits with
    http_status = 500  # what the API answers with


class UserError(ModelPortError):
    """Bad input, configuration or query: the caller can fix it."""

    exit_code = 2
    http_status = 400


class SourceError(ModelPortError, RuntimeError):
    """A source (remote registry) could not be harvested: it is unreachable, refused, or answered
    with something unusable. The message names the source and what went wrong (never credentials)."""

    http_status = 502


class BadRecordError(ModelPortError, ValueError):
    """One record's content is unusable: skipped and counted in the job report, the harvest goes on."""


class ServiceUnavailable(ModelPortError, RuntimeError):
    """A service or resource this process needs is not available right now (retry later)."""

    http_status = 503


def describe(e: BaseException, limit: int = 300) -> str:
    """An exception in one line for job reports and logs: its type and message, whitespace folded (a
    pydantic error spans lines), cut at `limit` characters."""
    text = f"{type(e).__name__}: {' '.join(str(e).split())}"
    return text if len(text) <= limit else text[:limit - 1] + "…"


__all__ = ["describe", "ModelPortError", "UserError", "SourceError", "BadRecordError", "ServiceUnavailable"]
