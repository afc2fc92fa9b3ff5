"""Schemathesis against the live app's own OpenAPI document, in development (open access) and in
production (keys on): every check schemathesis has (the CLI's ``--checks all``) over its
examples, coverage, fuzzing and stateful phases (workflows along the links it infers: create a
job, read it, follow its events, cancel it); no 5xx, and every answer in the schema.

Bounded and reproducible: a fixed seed (``FUZZ_SEED``), derandomised; the coverage phase sends
its fixed set of boundary and unexpected-method requests, the fuzzing phase ``FUZZ_EXAMPLES``
per operation (default 100: about a minute and a half for both modes on two cores), the
stateful phase a fifth as many workflows. ``make fuzz`` is the longer run
(``FUZZ_EXAMPLES=1000``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis import checks
from schemathesis.config import SchemathesisConfig

from service.api.app import create_app
from service.api.auth import hash_api_key
from service.config import ApiKey, Settings
from service.core.signing import new_private_key_pem
from service.testing.live_server import live_server

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))
SEED = int(os.environ.get("FUZZ_SEED", "19"))
STATEFUL_EXAMPLES = max(1, EXAMPLES // 5)
KEY = "dsk_fuzzing_key_0123456789"
SIGNING_KEY = new_private_key_pem().decode()
# A small n cap keeps the rare valid request cheap; fuzz deep, not the rate limiter.
COMMON: dict[str, Any] = {
    "denoiser": "none",
    "max_n_local": 2_000,
    "requests_per_minute_per_key": 0,
    "signing_key": SIGNING_KEY,
}
DEVELOPMENT = Settings(environment="development", **COMMON)
PRODUCTION = Settings(
    environment="production",
    secret="x" * 32,
    api_keys=[ApiKey(name="fuzz", sha256=hash_api_key(KEY))],
    **COMMON,
)
# Schema-valid requests this API refuses for what they mean, not their form: a job id that was
# never issued (404), base64 that is no image (415, 422), an unknown model name (422), n over
# the cap (422). positive_data_acceptance still fails on any other status: 400, 401 with a good
# key, 405.
ACCEPTED_POSITIVE = ["2XX", "404", "413", "415", "422"]


def _config(*, open_access: bool) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "suppress-health-check": ["all"],
            "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none"},
            "checks": {
                "positive_data_acceptance": {"expected-statuses": ACCEPTED_POSITIVE},
                # Development without keys is open access on purpose (the schema still names
                # the keys, as production needs them): a request without one is served.
                "ignored_auth": {"enabled": not open_access},
                # DELETE /v1/jobs/{id} cancels, it does not remove: the job stays readable, in
                # state "cancelled", until job_ttl_seconds, so that its client learns how it
                # ended (documented on the operation). A GET after it is 200 by design.
                "use_after_free": {"enabled": False},
            },
        }
    )


def _schema(settings: Settings) -> schemathesis.BaseSchema:
    document = create_app(settings).openapi()
    return schemathesis.openapi.from_dict(
        document, config=_config(open_access=settings.open_access)
    )


DEVELOPMENT_SCHEMA = _schema(DEVELOPMENT)
PRODUCTION_SCHEMA = _schema(PRODUCTION)
checks.load_all_checks()
# Every registered check function, as `--checks all` (class-based checks, none in this version,
# run from the registry on every response anyway); the config above tunes or turns off some.
ALL_CHECKS = [
    check
    for name in checks.CHECKS.get_all_names()
    if not checks.is_check_class(check := checks.CHECKS.get_one(name))
]


@pytest.fixture(scope="module")
def development_url() -> Iterator[str]:
    with live_server(create_app(DEVELOPMENT)) as url:
        yield url


@pytest.fixture(scope="module")
def production_url() -> Iterator[str]:
    with live_server(create_app(PRODUCTION)) as url:
        yield url


def _call(case: schemathesis.Case, base_url: str, headers: dict[str, str] | None) -> None:
    enabled = case.operation.schema.config.checks_config_for(operation=case.operation)
    selected = [check for check in ALL_CHECKS if enabled.get_by_name(name=check.__name__).enabled]
    case.call_and_validate(base_url=base_url, headers=headers, checks=selected, timeout=60)


@DEVELOPMENT_SCHEMA.parametrize()
def test_development(case: schemathesis.Case, development_url: str) -> None:
    _call(case, development_url, headers=None)


@PRODUCTION_SCHEMA.parametrize()
def test_production(case: schemathesis.Case, production_url: str) -> None:
    _call(case, production_url, headers={"Authorization": f"Bearer {KEY}"})


def _run_workflow(
    schema: schemathesis.BaseSchema, base_url: str, headers: dict[str, str] | None
) -> None:
    class Workflow(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"base_url": base_url, "headers": headers, "timeout": 60}

    Workflow.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=6,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )


def test_development_workflows(development_url: str) -> None:
    _run_workflow(DEVELOPMENT_SCHEMA, development_url, headers=None)


def test_production_workflows(production_url: str) -> None:
    _run_workflow(PRODUCTION_SCHEMA, production_url, headers={"Authorization": f"Bearer {KEY}"})
