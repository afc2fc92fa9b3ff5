"""Schemathesis against the live app's own OpenAPI document: no 5xx, every answer in the schema.

Bounded: ``MAX_EXAMPLES`` generated requests per operation, derandomised (reproducible in CI).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from service.api.app import create_app
from service.api.auth import hash_api_key
from service.config import ApiKey, Settings
from service.testing.live_server import live_server

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

MAX_EXAMPLES = 100
KEY = "dsk_fuzzing_key_0123456789"
# Keys on (so that auth is checked too); a small n cap keeps the rare valid request cheap.
SETTINGS = Settings(
    denoiser="none",
    max_n_local=2_000,
    requests_per_minute_per_key=0,  # fuzz deep, not the rate limiter
    api_keys=[ApiKey(name="fuzz", sha256=hash_api_key(KEY))],
)
SCHEMA = schemathesis.openapi.from_dict(create_app(SETTINGS).openapi())
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with live_server(create_app(SETTINGS)) as url:
        yield url


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_no_server_errors_and_answers_match_the_schema(operation, base_url: str) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def fuzz(case: schemathesis.Case) -> None:
        # Schema-valid but semantically refused requests (n over the cap, not an image) are
        # expected 4xx: positive_data_acceptance does not apply to this API.
        case.call_and_validate(
            base_url=base_url,
            headers={"X-API-Key": KEY},
            excluded_checks=[checks.positive_data_acceptance],
            timeout=60,
        )

    fuzz()
