"""schemathesis over the API's own OpenAPI schema (issue 11): every route, /sparql and /search
included, with generated valid and invalid input, against a real `modelport serve` on loopback; no
5xx and no response that contradicts the schema (status codes, content types, bodies). Fixed seed,
bounded cases; over the TF Hub fixture records."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import Unsatisfiable
from serve_helpers import Served


@pytest.fixture(scope="module")
def api_schema(tfhub_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    data_dir: Path = tmp_path_factory.mktemp("schema")
    shutil.copytree(tfhub_data, data_dir, dirs_exist_ok=True)
    env = {"MODELPORT_QUERY_TIMEOUT_S": "2", "MODELPORT_ADMIN_TOKEN": "schema-test-token"}
    with Served(data_dir, env) as served:
        yield schemathesis.openapi.from_url(f"{served.url}/openapi.json")


CASES_PER_OPERATION = 15  # per generation mode (valid, invalid input)
# No 5xx, and every response as the schema says: status code, content type, headers, body. (Not
# schemathesis's stricter opinions on which invalid input a route must refuse.)
CHECKS = [schemathesis.checks.not_a_server_error, schemathesis.checks.status_code_conformance,
          schemathesis.checks.content_type_conformance, schemathesis.checks.response_headers_conformance,
          schemathesis.checks.response_schema_conformance]


def test_no_5xx_and_responses_match_the_schema(api_schema: object) -> None:
    from hypothesis import given

    failures: list[str] = []
    calls = [0]
    operations = [r.ok() for r in api_schema.get_all_operations()]  # type: ignore[attr-defined]
    assert {op.path for op in operations} >= {"/sparql", "/search", "/harvests", "/models/{model_id}", "/health"}
    for op in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @settings(max_examples=CASES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
            @given(case=op.as_strategy(generation_mode=mode))
            def run(case: object) -> None:
                calls[0] += 1
                case.call_and_validate(checks=CHECKS)  # type: ignore[attr-defined]

            try:
                run()
            except Unsatisfiable:  # no invalid input exists for a route without parameters (/health)
                continue
            except (Exception, BaseExceptionGroup) as e:  # noqa: BLE001 — collected: one run reports them all
                failures.append(f"{op.method.upper()} {op.path} ({mode.value}): {str(e)[:1500]}")
    assert not failures, "\n\n".join(failures)
    assert calls[0] >= 200, calls  # a few hundred requests in all
