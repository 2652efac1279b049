"""Secrets never leave through what we store, log or serve: URLs lose their userinfo
(`http://user:password@host`) and secret-looking query parameters (`?token=…`, pre-signed URL
signatures) before they are stored or logged; text (error messages) has every URL in it so treated.
The patterns are linear (no nested quantifiers) and run on bounded input."""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameter names that carry credentials: OAuth/API tokens and keys, passwords, and the
# signatures of pre-signed URLs (S3 X-Amz-*, GCS X-Goog-*, Azure SAS `sig`).
_SECRET_PARAM = re.compile(
    r"token|secret|passw|pwd|api[-_]?key|apikey|access[-_]?key|auth|credential|session|signature|^sig$|^key$"
    r"|x-amz-security|x-goog-credential", re.IGNORECASE)
# Option names (settings, `[[sources]]` options) whose values are credentials.
SECRET_OPTION = re.compile(r"token|secret|passw|api[-_]?key|^key$|credential|auth", re.IGNORECASE)
# A URL inside text: scheme://non-space run. Linear: one character class, bounded by the text.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,30}://[^\s'\"<>]+")
MAX_TEXT = 1_000_000  # longer text is cut before scanning


def redact_url(url: str) -> str:
    """`url` without userinfo and without secret-looking query parameters (unchanged otherwise)."""
    if "@" not in url and "?" not in url and "#" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:  # not parseable (e.g. a broken IPv6 host): drop what could be userinfo
        return re.sub(r"//[^/@\s]*@", "//", url)
    netloc = parts.netloc.rsplit("@", 1)[-1] if "@" in parts.netloc else parts.netloc
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [(k, v) for k, v in pairs if not _SECRET_PARAM.search(k)]
        if len(kept) != len(pairs):
            query = urlencode(kept)
    fragment = parts.fragment
    if fragment and "=" in fragment:  # OAuth implicit flow puts access_token in the fragment
        pairs = parse_qsl(fragment, keep_blank_values=True)
        if any(_SECRET_PARAM.search(k) for k, _ in pairs):
            fragment = urlencode([(k, v) for k, v in pairs if not _SECRET_PARAM.search(k)])
    if netloc == parts.netloc and query == parts.query and fragment == parts.fragment:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def redact_text(text: str) -> str:
    """Every URL in `text` redacted (`redact_url`)."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text[:MAX_TEXT])


def scrub(value: Any, depth: int = 0) -> Any:
    """`value` (JSON-like) with every string's URLs redacted; deeper than 32 levels is cut."""
    if isinstance(value, str):
        return redact_text(value)
    if depth > 32:
        return None
    if isinstance(value, dict):
        return {k: scrub(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, depth + 1) for v in value]
    return value


class _RedactingFactory:
    """A LogRecord factory that redacts the formatted message (and the exception text) of every
    record, whichever library logs it: a URL with credentials must not reach a log handler."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = self.inner(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 — a broken format string is logging's to report
            return record
        if "://" in message:
            record.msg, record.args = redact_text(message), ()
        if record.exc_info and record.exc_info[1] is not None and "://" in str(record.exc_info[1]):
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return record


def install_log_redaction() -> None:
    """Redact every log record from now on (idempotent)."""
    current = logging.getLogRecordFactory()
    if not isinstance(current, _RedactingFactory):
        logging.setLogRecordFactory(_RedactingFactory(current))
