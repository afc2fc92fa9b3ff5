"""Each vendor adapter against its fake, over real HTTP on loopback; the fan-out engine."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import numpy as np
import pytest
from PIL import Image
from pydantic import SecretStr

from service.adapters.aws import AwsAdapter, AwsSettings
from service.adapters.azure import AzureAdapter, AzureSettings
from service.adapters.base import (
    NO_LABEL,
    Adapter,
    AdapterError,
    Answer,
    CredentialsError,
    Failure,
    Label,
    retry_after_seconds,
)
from service.adapters.clarifai import ClarifaiAdapter, ClarifaiSettings
from service.adapters.fanout import FanOut, FanOutPolicy
from service.adapters.google import GoogleAdapter, GoogleSettings
from service.adapters.kserve import KServeAdapter, KServeSettings
from service.adapters.prepare import encode_png
from service.testing.fakes import aws as fake_aws
from service.testing.fakes import azure as fake_azure
from service.testing.fakes import clarifai as fake_clarifai
from service.testing.fakes import google as fake_google
from service.testing.fakes import kserve as fake_kserve
from service.testing.fakes.common import FakeState
from service.testing.fakes.labeler import Guess
from service.testing.live_server import live_server

pytestmark = pytest.mark.anyio


@dataclass
class Vendor:
    name: str
    build: Callable[[FakeState], object]
    adapter: Callable[[httpx.AsyncClient, str, str], Adapter]  # (client, url, key)
    key_kind: Callable[[Label], bool]  # what a stable label key looks like


VENDORS = [
    Vendor(
        "azure",
        fake_azure.build,
        lambda c, url, key: AzureAdapter(c, AzureSettings(endpoint=url, key=SecretStr(key))),
        lambda label: label.key == label.key.lower(),
    ),
    Vendor(
        "azure-3.2",
        fake_azure.build,
        lambda c, url, key: AzureAdapter(
            c, AzureSettings(endpoint=url, key=SecretStr(key), api="3.2")
        ),
        lambda label: label.key == label.key.lower(),
    ),
    Vendor(
        "google",
        fake_google.build,
        lambda c, url, key: GoogleAdapter(c, GoogleSettings(endpoint=url, api_key=SecretStr(key))),
        lambda label: label.key.startswith("/m/"),
    ),
    Vendor(
        "aws",
        fake_aws.build,
        lambda c, url, key: AwsAdapter(
            c,
            AwsSettings(
                endpoint=url + "/",
                access_key_id="AKIDFAKE",
                secret_access_key=SecretStr("fake-secret-key" if key == "good-key" else key),
            ),
        ),
        lambda label: label.key == label.key.lower(),
    ),
    Vendor(
        "clarifai",
        fake_clarifai.build,
        lambda c, url, key: ClarifaiAdapter(c, ClarifaiSettings(endpoint=url, pat=SecretStr(key))),
        lambda label: label.key != label.name,
    ),
    Vendor(
        "kserve",
        fake_kserve.build,
        lambda c, url, key: KServeAdapter(
            c,
            KServeSettings(
                url=url, model="colours", token=SecretStr(key), labels=fake_kserve.LABELS
            ),
        ),
        lambda label: label.key.isdigit(),
    ),
]


@contextmanager
def running(vendor: Vendor, **state: object) -> Iterator[tuple[FakeState, str]]:
    fake = FakeState(**state)  # type: ignore[arg-type]
    with live_server(vendor.build(fake)) as url:  # type: ignore[arg-type]
        yield fake, url


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0)) as c:
        yield c


def photos(count: int, side: int = 96, seed: int = 0) -> list[bytes]:
    """Distinct PNG photos of solid-ish colours, above every vendor's minimum side."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        colour = rng.integers(0, 256, 3)
        pixels = np.clip(colour + rng.normal(0, 20, (side, side, 3)), 0, 255).astype(np.uint8)
        images.append(encode_png(pixels))
    return images


FAST = FanOutPolicy(backoff_base_s=0.01, backoff_max_s=0.05, deadline_s=60, breaker_failures=50)


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
@pytest.mark.subprocess
@pytest.mark.slow
async def test_happy_path_labels_every_image_with_stable_keys(
    vendor: Vendor, client: httpx.AsyncClient
) -> None:
    with running(vendor) as (fake, url):
        fanout = FanOut(vendor.adapter(client, url, "good-key"), FAST)
        results = await fanout.classify(photos(5))
    assert all(isinstance(r, Answer) for r in results), results
    tops = [r.top() for r in results if isinstance(r, Answer)]
    assert all(vendor.key_kind(t) and 0 <= t.score <= 1 for t in tops if t is not NO_LABEL)
    assert fake.images == 5


@pytest.mark.parametrize(
    ("vendor", "images", "calls"),
    [(VENDORS[2], 40, 3), (VENDORS[4], 200, 2), (VENDORS[0], 4, 4)],
    ids=["google-16-per-call", "clarifai-128-per-call", "azure-1-per-call"],
)
@pytest.mark.subprocess
@pytest.mark.slow
async def test_batches_follow_each_vendors_limit(
    vendor: Vendor, images: int, calls: int, client: httpx.AsyncClient
) -> None:
    with running(vendor) as (fake, url):
        fanout = FanOut(vendor.adapter(client, url, "good-key"), FAST)
        results = await fanout.classify(photos(images, side=64))
    assert fake.calls == calls and fanout.calls == calls
    assert sum(isinstance(r, Answer) for r in results) == images


@pytest.mark.parametrize("vendor", VENDORS[:5], ids=lambda v: v.name)
@pytest.mark.subprocess
@pytest.mark.slow
async def test_bad_credentials_stop_before_anything_is_billed(
    vendor: Vendor, client: httpx.AsyncClient
) -> None:
    with running(vendor) as (fake, url):
        fanout = FanOut(vendor.adapter(client, url, "wrong-key"), FAST)
        with pytest.raises(CredentialsError):
            await fanout.classify(photos(3))
    assert fake.images == 0


REFUSAL_SHAPES = [
    (vendor, shape)
    for vendor in VENDORS
    for shape in {
        "azure": fake_azure.REFUSALS,
        "azure-3.2": fake_azure.REFUSALS,
        "google": fake_google.REFUSALS,
        "aws": fake_aws.REFUSALS,
        "clarifai": fake_clarifai.REFUSALS,
        "kserve": fake_kserve.REFUSALS,
    }[vendor.name]
]


@pytest.mark.parametrize(
    ("vendor", "shape"), REFUSAL_SHAPES, ids=[f"{v.name}-{s}" for v, s in REFUSAL_SHAPES]
)
@pytest.mark.subprocess
@pytest.mark.slow
async def test_every_documented_credential_refusal_stops_at_once(
    vendor: Vendor, shape: str, client: httpx.AsyncClient
) -> None:
    """Each vendor's documented ways of refusing a key (with the right key configured here, so
    only the shape of the answer can tell) end the call with CredentialsError, never retried."""
    with running(vendor) as (fake, url):
        fake.faults.refusal = shape
        fanout = FanOut(vendor.adapter(client, url, "good-key"), FAST)
        with pytest.raises(CredentialsError):
            await fanout.classify(photos(3))
    assert fake.images == 0 and fake.calls <= 3  # one call per batch in flight, no retries


@pytest.mark.parametrize(
    ("adapter", "status", "body"),
    [
        (
            lambda c: GoogleAdapter(c, GoogleSettings(endpoint="http://v", api_key=SecretStr("k"))),
            400,
            {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "Bad image data."}},
        ),
        (
            lambda c: ClarifaiAdapter(c, ClarifaiSettings(endpoint="http://v", pat=SecretStr("k"))),
            400,
            {"status": {"code": 10020, "description": "Failure", "details": "Model not found"}},
        ),
    ],
    ids=["google-bad-request", "clarifai-failure"],
)
async def test_other_errors_of_the_same_codes_are_not_refused_credentials(
    adapter: Callable[[httpx.AsyncClient], Adapter], status: int, body: dict
) -> None:
    """The negative control of the refusal shapes: the same status codes about something else."""
    transport = httpx.MockTransport(lambda request: httpx.Response(status, json=body))
    async with httpx.AsyncClient(transport=transport) as vendor_client:
        with pytest.raises(AdapterError) as raised:
            await adapter(vendor_client).classify(photos(1))
    assert not isinstance(raised.value, CredentialsError)


@pytest.mark.parametrize("vendor", VENDORS[:5], ids=lambda v: v.name)
@pytest.mark.subprocess
@pytest.mark.slow
async def test_a_429_storm_ends_with_every_vote_counted(
    vendor: Vendor, client: httpx.AsyncClient
) -> None:
    """The fake allows 10 requests/s with no burst; the client is told 400/s: most first tries
    are throttled, and retries with backoff still get every image answered. At least 10 calls
    for every vendor (Google batches 16 images a call, Clarifai 128): with only two, a loaded
    machine once sent them 100 ms apart and nothing was throttled."""
    with running(vendor, rate=10.0, burst=1.0) as (fake, url):
        policy = FanOutPolicy(
            requests_per_second=400, max_attempts=30, backoff_base_s=0.02, backoff_max_s=0.2
        )
        fanout = FanOut(vendor.adapter(client, url, "good-key"), policy)
        images = photos(10 * vendor.adapter(client, url, "good-key").max_images_per_call)
        results = await fanout.classify(images)
    assert fake.throttled > 0
    assert all(isinstance(r, Answer) for r in results)


@pytest.mark.parametrize("vendor", VENDORS[:5], ids=lambda v: v.name)
@pytest.mark.subprocess
@pytest.mark.slow
async def test_server_errors_and_malformed_answers_are_retried(
    vendor: Vendor, client: httpx.AsyncClient
) -> None:
    with running(vendor) as (fake, url):
        fake.faults.server_error, fake.faults.malformed = 2, 1
        results = await FanOut(vendor.adapter(client, url, "good-key"), FAST).classify(photos(3))
    assert all(isinstance(r, Answer) for r in results)
    assert fake.faults.server_error == fake.faults.malformed == 0


@pytest.mark.subprocess
@pytest.mark.slow
async def test_a_timeout_is_retried(client: httpx.AsyncClient) -> None:
    with running(VENDORS[2]) as (fake, url):
        fake.faults.hang = 1
        fast_timeout = httpx.AsyncClient(timeout=httpx.Timeout(0.5))
        async with fast_timeout:
            adapter = VENDORS[2].adapter(fast_timeout, url, "good-key")
            results = await FanOut(adapter, FAST).classify(photos(2))
    assert all(isinstance(r, Answer) for r in results)


@pytest.mark.subprocess
@pytest.mark.slow
async def test_failures_that_outlast_the_retries_are_counted_not_dropped(
    client: httpx.AsyncClient,
) -> None:
    with running(VENDORS[0]) as (fake, url):
        fake.faults.server_error = 1000
        policy = FanOutPolicy(max_attempts=3, backoff_base_s=0.01, backoff_max_s=0.02)
        results = await FanOut(VENDORS[0].adapter(client, url, "good-key"), policy).classify(
            photos(4)
        )
    assert len(results) == 4 and all(isinstance(r, Failure) for r in results)
    assert fake.calls == 4 * 3  # every image tried max_attempts times


@pytest.mark.subprocess
@pytest.mark.slow
async def test_the_circuit_breaker_stops_calling_a_dead_vendor(client: httpx.AsyncClient) -> None:
    with running(VENDORS[0]) as (fake, url):
        fake.faults.server_error = 1000
        policy = FanOutPolicy(max_attempts=1, concurrency=1, breaker_failures=3, breaker_reset_s=60)
        fanout = FanOut(VENDORS[0].adapter(client, url, "good-key"), policy)
        results = await fanout.classify(photos(10))
    assert all(isinstance(r, Failure) for r in results)
    assert fake.calls == 3 and fanout.breaker.open
    assert "circuit open" in results[-1].reason  # type: ignore[union-attr]


@pytest.mark.parametrize("vendor", [VENDORS[2], VENDORS[4]], ids=lambda v: v.name)
@pytest.mark.subprocess
@pytest.mark.slow
async def test_per_image_errors_inside_a_200_are_retried_per_image(
    vendor: Vendor, client: httpx.AsyncClient
) -> None:
    with running(vendor) as (fake, url):
        fake.faults.image_error_every = 4  # retryable per-image errors (Google 14, Clarifai 21354)
        results = await FanOut(vendor.adapter(client, url, "good-key"), FAST).classify(photos(10))
    assert all(isinstance(r, Answer) for r in results)
    assert fake.calls >= 2  # the failed images went again, in a smaller call


@pytest.mark.parametrize("vendor", [VENDORS[2], VENDORS[4]], ids=lambda v: v.name)
@pytest.mark.subprocess
@pytest.mark.slow
async def test_a_bad_image_fails_alone(vendor: Vendor, client: httpx.AsyncClient) -> None:
    with running(vendor) as (_, url):
        images = photos(3)
        images[1] = b"not an image"
        results = await FanOut(vendor.adapter(client, url, "good-key"), FAST).classify(images)
    assert [type(r) for r in results] == [Answer, Failure, Answer]


@pytest.mark.parametrize("vendor", [VENDORS[0], VENDORS[3]], ids=lambda v: v.name)
@pytest.mark.subprocess
@pytest.mark.slow
async def test_32px_copies_must_be_upscaled_for_azure_and_aws(
    vendor: Vendor, client: httpx.AsyncClient
) -> None:
    pixels = np.full((32, 32, 3), 128, np.uint8)
    with running(vendor) as (_, url):
        adapter = vendor.adapter(client, url, "good-key")
        fanout = FanOut(adapter, FAST)
        raw, upscaled = await fanout.classify(
            [encode_png(pixels), encode_png(pixels, adapter.min_side)]
        )
    assert isinstance(raw, Failure) and isinstance(upscaled, Answer)
    with Image.open(io.BytesIO(encode_png(pixels, adapter.min_side))) as image:
        assert min(image.size) == adapter.min_side


@pytest.mark.subprocess
@pytest.mark.slow
async def test_aws_requests_are_signed_with_sigv4_and_a_wrong_secret_is_refused(
    client: httpx.AsyncClient,
) -> None:
    with running(VENDORS[3]) as (_, url):
        good = await FanOut(VENDORS[3].adapter(client, url, "good-key"), FAST).classify(photos(1))
        assert isinstance(good[0], Answer) and good[0].model_version == "3.0"
        with pytest.raises(CredentialsError, match="InvalidSignatureException"):
            await FanOut(VENDORS[3].adapter(client, url, "not-the-secret"), FAST).classify(
                photos(1)
            )


def test_top_label_breaks_ties_by_key_not_by_order() -> None:
    a, b = Label("dog", "Dog", 0.8), Label("cat", "Cat", 0.8)
    assert Answer((a, b)).top().key == "cat" == Answer((b, a)).top().key
    assert Answer((Label("x", "X", 0.9), b)).top().key == "x"
    assert Answer(()).top() is NO_LABEL


def test_label_map_merges_synonyms_before_the_vote() -> None:
    answer = Answer((Label("kitten", "Kitten", 0.6), Label("dog", "Dog", 0.7)))
    assert answer.top().key == "dog"
    assert answer.top({"kitten": "cat", "tabby": "cat"}).key == "dog"
    merged = Answer((Label("kitten", "Kitten", 0.75), Label("dog", "Dog", 0.7)))
    assert merged.top({"kitten": "cat"}).key == "cat"


@pytest.mark.parametrize(
    ("headers", "message", "seconds"),
    [
        ({"Retry-After": "7"}, "", 7.0),
        ({"retry-after-ms": "1500"}, "", 1.5),
        ({"x-ms-retry-after-ms": "250"}, "", 0.25),
        ({}, "Please retry after 3 second(s).", 3.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, "", 0.0),
        ({}, "Rate exceeded", None),
    ],
)
def test_server_given_delays_are_read(headers: dict, message: str, seconds: float | None) -> None:
    assert retry_after_seconds(headers, message) == seconds


def test_backoff_waits_at_least_the_server_given_delay() -> None:
    from tenacity import RetryCallState

    from service.adapters.fanout import _WaitRetryAfter

    wait = _WaitRetryAfter(base=0.01, cap=1.0)
    state = RetryCallState(None, None, (), {})
    state.attempt_number = 1

    def fail() -> None:
        raise AdapterError("throttled", retryable=True, retry_after=2.5)

    try:
        fail()
    except AdapterError as exc:
        state.set_exception((type(exc), exc, exc.__traceback__))
    assert wait(state) >= 2.5


@pytest.mark.subprocess
@pytest.mark.slow
async def test_contract_google_answers_parse_with_the_google_sdk(
    client: httpx.AsyncClient,
) -> None:
    from google.cloud import vision

    with running(VENDORS[2]) as (_, url):
        adapter = VENDORS[2].adapter(client, url, "good-key")
        import base64

        body = {
            "requests": [
                {
                    "image": {"content": base64.b64encode(photos(1)[0]).decode()},
                    "features": [{"type": 4, "maxResults": 5}],
                }
            ]
        }
        response = await client.post(f"{url}/v1/images:annotate?key=good-key", json=body)
    parsed = vision.BatchAnnotateImagesResponse.from_json(response.text)
    assert parsed.responses[0].label_annotations[0].mid.startswith("/m/")
    assert adapter.configured


@pytest.mark.subprocess
@pytest.mark.slow
async def test_contract_azure_4_answers_parse_with_the_azure_sdk(
    client: httpx.AsyncClient,
) -> None:
    from azure.ai.vision.imageanalysis.models import ImageAnalysisResult

    with running(VENDORS[0]) as (_, url):
        response = await client.post(
            f"{url}/computervision/imageanalysis:analyze",
            params={"api-version": "2023-10-01", "features": "tags"},
            headers={
                "Ocp-Apim-Subscription-Key": "good-key",
                "Content-Type": "application/octet-stream",
            },
            content=photos(1)[0],
        )
    result = ImageAnalysisResult(response.json())
    assert result.tags is not None and result.tags.list[0].confidence > 0
    assert result.model_version == "2024-02-01"


@pytest.mark.subprocess
@pytest.mark.slow
async def test_contract_aws_answers_parse_with_botocore(client: httpx.AsyncClient) -> None:
    import botocore.session
    from botocore.parsers import create_parser

    model = botocore.session.get_session().get_service_model("rekognition")
    shape = model.operation_model("DetectLabels").output_shape
    with running(VENDORS[3]) as (_, url):
        adapter = VENDORS[3].adapter(client, url, "good-key")
        import base64
        import json

        body = json.dumps({"Image": {"Bytes": base64.b64encode(photos(1)[0]).decode()}}).encode()
        response = await client.post(
            adapter.url,
            content=body,
            headers=adapter._signed_headers(body),  # type: ignore[attr-defined]
        )
    parsed = create_parser("json").parse(
        {"status_code": 200, "headers": dict(response.headers), "body": response.content}, shape
    )
    assert parsed["LabelModelVersion"] == "3.0" and "Labels" in parsed


class _Taxonomy:
    """Two guesses whose names have parents in the fake's DetectLabels hierarchy."""

    def top(self, image: bytes, k: int = 5) -> list[Guess]:
        return [Guess("n1", "tabby cat", 0.93), Guess("n2", "stone wall", 0.6)][:k]


@pytest.mark.subprocess
@pytest.mark.slow
async def test_aws_votes_with_the_most_specific_label_not_an_ancestor(
    client: httpx.AsyncClient,
) -> None:
    """DetectLabels lists "Cat" beside "Tabby Cat" at the same confidence; the tie would go to
    the generic "cat" by key. Only DSMOOTH_AWS_ANCESTOR_LABELS keeps the ancestors."""
    aws = VENDORS[3]
    with running(aws, labeler=_Taxonomy()) as (_, url):
        specific = aws.adapter(client, url, "good-key")
        assert isinstance(specific, AwsAdapter)
        with_ancestors = AwsAdapter(
            client, specific.settings.model_copy(update={"ancestor_labels": True})
        )
        (answer,) = await specific.classify(photos(1))
        (generic,) = await with_ancestors.classify(photos(1))
    assert isinstance(answer, Answer) and isinstance(generic, Answer)
    assert [label.key for label in answer.labels] == ["tabby cat", "stone wall"]
    assert answer.top().key == "tabby cat"
    assert generic.top().key == "cat" and {"cat", "wall"} <= {x.key for x in generic.labels}
    assert specific.identity != with_ancestors.identity  # a different classifier


@pytest.mark.subprocess
@pytest.mark.slow
async def test_a_slow_vendor_ends_in_counted_failures_at_the_deadline(
    client: httpx.AsyncClient,
) -> None:
    with running(VENDORS[2]) as (fake, url):
        fake.faults.slow_s = 5.0
        policy = FanOutPolicy(deadline_s=1.0, backoff_base_s=0.01)
        results = await FanOut(VENDORS[2].adapter(client, url, "good-key"), policy).classify(
            photos(20)
        )
    assert len(results) == 20  # every copy accounted for: a vote against each, no hang
    assert all(isinstance(r, Failure) and r.reason == "deadline exceeded" for r in results)
