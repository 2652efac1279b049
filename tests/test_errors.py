"""The exception hierarchy (modelport/errors.py): every error ModelPort raises on purpose is a
`ModelPortError` of one kind, and keeps the built-in base its callers catch it by."""

from __future__ import annotations

import pytest

from modelport.datadir_lock import DataDirBusy
from modelport.errors import BadRecordError, ModelPortError, ServiceUnavailable, SourceError, UserError
from modelport.harvesters.artifact_download import CannotCap, OverCap
from modelport.harvesters.base import MalformedRecord
from modelport.harvesters.base import SourceError as HarvesterSourceError
from modelport.harvesters.bounded import UnsafeInput, load_yaml
from modelport.harvesters.registry import SourceOptionsError, UnknownSourceKind
from modelport.harvesters.tfhub_crawl import CrawlFailed
from modelport.harvesters.tfhub_parse import MalformedDocument
from modelport.index.catalog import CatalogIOError
from modelport.index.embeddings import EmbeddingsUnavailable
from modelport.index.query_syntax import QuerySyntaxError, compile_query
from modelport.index.search import CursorError, SearchBackendError, SearchQuery, decode_cursor
from modelport.index.sparql_exec import SparqlError, SparqlTimeout
from modelport.index.sparql_pool import QueryLimitError, QueryRefused
from modelport.pipeline import RecordFailure, is_bad_record
from modelport.scheduler import AlreadyRunning, RunStopped, UnknownSource
from modelport.schema.verify import VerificationError
from modelport.verify_sandbox import SandboxUnavailable

KINDS = {
    UserError: [SourceOptionsError, UnknownSourceKind, QuerySyntaxError, CursorError, SparqlError, QueryRefused,
                SparqlTimeout, UnknownSource, AlreadyRunning],
    SourceError: [HarvesterSourceError, CrawlFailed],
    BadRecordError: [MalformedRecord, MalformedDocument, UnsafeInput, OverCap, CannotCap],
    ServiceUnavailable: [SearchBackendError, EmbeddingsUnavailable, CatalogIOError, DataDirBusy, SandboxUnavailable],
    ModelPortError: [QueryLimitError, RunStopped, RecordFailure, VerificationError],
}
# The built-in base each kept, so `except ValueError` (and the like) sites still catch them.
BUILTIN = {QuerySyntaxError: ValueError, CursorError: ValueError, SparqlError: ValueError,
           SourceOptionsError: ValueError, UnknownSourceKind: ValueError, MalformedRecord: ValueError,
           UnsafeInput: ValueError, SparqlTimeout: TimeoutError, UnknownSource: KeyError,
           HarvesterSourceError: RuntimeError, SearchBackendError: RuntimeError}


@pytest.mark.parametrize(("kind", "cls"), [(k, c) for k, cs in KINDS.items() for c in cs],
                         ids=lambda x: getattr(x, "__name__", str(x)))
def test_every_error_class_is_a_modelport_error_of_its_kind(kind: type, cls: type) -> None:
    assert issubclass(cls, kind) and issubclass(cls, ModelPortError)


@pytest.mark.parametrize("cls", list(BUILTIN), ids=lambda c: c.__name__)
def test_errors_keep_the_builtin_base_existing_callers_catch(cls: type) -> None:
    assert issubclass(cls, BUILTIN[cls])


def test_user_errors_say_exit_2_and_4xx_unavailable_503() -> None:
    assert UserError.exit_code == 2 and 400 <= UserError.http_status < 500
    assert AlreadyRunning.http_status == 409 and UnknownSource.http_status == 404
    assert ServiceUnavailable.http_status == 503 and ServiceUnavailable.exit_code == 1


def test_real_raises_carry_their_kind() -> None:
    with pytest.raises(UserError):
        compile_query("runtime:no-such-runtime", nl=False)
    with pytest.raises(UserError):
        decode_cursor(SearchQuery(cursor="garbage.garbage"))
    with pytest.raises(BadRecordError):
        load_yaml("a: &a [*a]")


def test_only_content_errors_are_bad_records() -> None:
    """A plain ValueError (a bug in our code) is not the record's fault; a refusal of its content is."""
    assert is_bad_record(MalformedRecord("no name")) and is_bad_record(UnicodeEncodeError("utf-8", "x", 0, 1, "x"))
    assert not is_bad_record(ValueError("invalid literal for int()"))
    assert not is_bad_record(KeyError("name"))
    assert not is_bad_record(CatalogIOError("disk full"))
