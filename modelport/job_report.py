"""A job's report (counts, a bounded sample of its errors grouped by kind) and which failures are a
record's fault (set aside, counted) and which are a bug (the job fails, naming the record)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ValidationError

from modelport.errors import BadRecordError, ModelPortError, describe
from modelport.index.catalog import CatalogIOError
from modelport.schema.redact import redact_text
from modelport.unknown_terms import UnknownTerms


@dataclass
class JobReport:
    job_id: int
    source: str
    mode: str
    status: str = "running"  # ok | partial | failed | interrupted
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("seen", "inserted", "updated", "unchanged", "tombstoned", "skipped", "quarantined"), 0))
    # The first MAX_ERROR_SAMPLES errors (ref, reason), and how many of each kind there were in all: a
    # harvest of a million bad records keeps a bounded report (DataHub's SourceReport does the same).
    errors: list[dict[str, str]] = field(default_factory=list)
    error_groups: dict[str, int] = field(default_factory=dict)
    errors_total: int = 0
    # Tasks and libraries the records name that the KB does not know (their source terms), counted.
    unknown_terms: UnknownTerms = field(default_factory=UnknownTerms)

    def error(self, ref: str, reason: str, **extra: str) -> None:
        self.errors_total += 1
        group = error_group(reason)
        if group not in self.error_groups and len(self.error_groups) >= MAX_ERROR_GROUPS:
            group = "other"
        self.error_groups[group] = self.error_groups.get(group, 0) + 1
        if len(self.errors) < MAX_ERROR_SAMPLES:
            # Error texts quote what failed, URLs included: never with their credentials.
            self.errors.append({"ref": redact_text(ref), "reason": redact_text(reason), **extra})


MAX_ERROR_SAMPLES = 1000  # errors a job report keeps (the catalog stores as many)
MAX_ERROR_GROUPS = 50


def error_group(reason: str) -> str:
    """The kind of an error, for the report's counts: its reason up to the first colon ("malformed",
    "quarantined (store)", "enrichment"), or its first words; never an unbounded text."""
    head = reason.split(":", 1)[0].strip() if ":" in reason else " ".join(reason.split()[:4])
    return redact_text(head[:60]) or "error"


class RecordFailure(ModelPortError, RuntimeError):
    """A record made our own code fail in a way that is not a check of its content (a bug): the job
    fails loudly, naming the record, instead of quietly setting it aside."""

    def __init__(self, stage: str, rid: str, error: BaseException) -> None:
        super().__init__(f"{stage} of record {rid} failed: {describe(error, 500)}")
        self.stage, self.rid = stage, rid


# Failures caused by a record's content (modelport/errors.py): a source's or parser's refusal
# (BadRecordError: MalformedRecord, UnsafeInput, MalformedDocument), a payload that does not fit the
# schema (pydantic's ValidationError), text a store cannot encode (UnicodeError), a store refusing the
# text it was given (Oxigraph parse errors are SyntaxErrors), nesting too deep for a recursive parser.
# A plain ValueError is not among them: a mapper that raises one has a bug, and the job fails.
BAD_RECORD = (BadRecordError, ValidationError, UnicodeError, SyntaxError, RecursionError)


def is_bad_record(e: BaseException) -> bool:
    """Whether `e` is the record's fault (BAD_RECORD): skipped or quarantined, counted in the report.
    Anything else is a bug or the environment (disk, network) and must not be set aside quietly."""
    return isinstance(e, BAD_RECORD) and not isinstance(e, CatalogIOError)
