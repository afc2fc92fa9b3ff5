"""Problem types: every slug the code raises is registered, and every type URI is a page."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from service.api.app import create_app
from service.api.problems import PROBLEM_TYPES
from service.config import Settings

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]
# slug="..." and slug=f"...{x}..." of ProblemError, type="/problems/..." of a job's Problem.
SLUG = re.compile(r'(?:slug=f?"|type=f?"/problems/)([^"]*)"')
# The f-string slugs and what their placeholders take (UnknownModel kinds, DecodeFailure reasons).
EXPANSIONS = {
    "unknown-{exc.kind}": ["unknown-classifier", "unknown-denoiser"],
    "image-{exc.reason.replace('_', '-')}": [
        "image-empty", "image-unsupported", "image-too-large", "image-corrupt",
    ],
    "{exc.slug}": [],  # a ProblemError's own slug, checked where it is raised
    "{problem.slug}": [],
}  # fmt: skip


def slugs_in(source: str) -> set[str]:
    found: set[str] = set()
    for slug in SLUG.findall(source):
        if slug == "":  # plain HTTP errors: about:blank
            continue
        found.update(EXPANSIONS.get(slug, [slug]))
    return found


def raised_slugs() -> set[str]:
    return set().union(*(slugs_in(p.read_text()) for p in (ROOT / "service").rglob("*.py")))


def test_every_raised_slug_is_registered() -> None:
    found = raised_slugs()
    assert {"unauthorised", "invalid-parameters", "image-corrupt", "job-lost"} <= found
    assert found - set(PROBLEM_TYPES) == set()


def test_an_unregistered_slug_is_caught() -> None:
    """Negative control: the scan sees a new slug that nobody registered."""
    source = 'raise ProblemError(status=418, slug="teapot", title="t", detail="d")'
    assert slugs_in(source) - set(PROBLEM_TYPES) == {"teapot"}
    assert slugs_in('slug=f"unknown-{exc.kind}"') == {"unknown-classifier", "unknown-denoiser"}


async def test_every_problem_type_uri_resolves() -> None:
    async with _client() as client:
        listing = await client.get("/problems")
        assert listing.status_code == 200 and "text/html" in listing.headers["content-type"]
        for slug, problem in PROBLEM_TYPES.items():
            page = await client.get(problem.uri)
            assert page.status_code == 200, slug
            assert f'href="{problem.uri}"' in listing.text
            assert problem.status == 499 or str(problem.status) in page.text


async def test_an_unknown_problem_type_is_404() -> None:
    async with _client() as client:
        response = await client.get("/problems/no-such-problem")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_problem_document_type_resolves() -> None:
    async with _client() as client:
        headers = {"content-type": "application/json"}
        problem = await client.post("/v1/certify", content=b"{", headers=headers)
        assert problem.status_code == 400
        assert (await client.get(problem.json()["type"])).status_code == 200


def test_problem_pages_stay_out_of_the_sdks() -> None:
    paths = create_app(Settings(denoiser="none", device="cpu")).openapi()["paths"]
    assert not any(path.startswith("/problems") for path in paths)


@asynccontextmanager
async def _client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(denoiser="none", device="cpu"))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client
