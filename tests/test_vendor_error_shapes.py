"""Error shapes the vendors document that the project's own fakes do not all produce: each is
answered by an ``httpx.MockTransport`` with the documented status, headers and body, and read by
the real adapter (and, for unreadable answers, the real fan-out)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import httpx
import numpy as np
import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from service.adapters.aws import AwsAdapter, AwsSettings
from service.adapters.azure import AzureAdapter, AzureSettings
from service.adapters.base import Adapter, AdapterError, Answer, CredentialsError, Failure, Label
from service.adapters.clarifai import ClarifaiAdapter, ClarifaiSettings
from service.adapters.fanout import FanOut, FanOutPolicy, _batches
from service.adapters.google import GoogleAdapter, GoogleSettings
from service.adapters.kserve import KServeAdapter, KServeSettings
from service.adapters.prepare import encode_png, largest_png
from service.testing.fakes import google as fake_google
from service.testing.fakes.common import FakeState
from service.testing.live_server import live_server
from tests.test_adapters import FAST as NO_WAIT
from tests.test_adapters import photos

pytestmark = pytest.mark.anyio

FAST = FanOutPolicy(max_attempts=2, backoff_base_s=0.001, backoff_max_s=0.01)


def _clarifai(client: httpx.AsyncClient) -> Adapter:
    return ClarifaiAdapter(client, ClarifaiSettings(endpoint="http://v", pat=SecretStr("k")))


def _azure(client: httpx.AsyncClient) -> Adapter:
    return AzureAdapter(client, AzureSettings(endpoint="http://v", key=SecretStr("k")))


def _google(client: httpx.AsyncClient) -> Adapter:
    return GoogleAdapter(client, GoogleSettings(endpoint="http://v", api_key=SecretStr("k")))


async def _classify(
    adapter: Callable[[httpx.AsyncClient], Adapter], response: httpx.Response, images: int = 1
) -> list[Answer | Failure]:
    transport = httpx.MockTransport(lambda request: response)
    async with httpx.AsyncClient(transport=transport) as client:
        return await adapter(client).classify(photos(images))


def _output(code: int | str, description: str = "") -> dict[str, Any]:
    return {"status": {"code": code, "description": description}}


async def test_clarifai_failure_with_a_status_per_input_fails_each_input_for_its_own_reason() -> (
    None
):
    # FAILURE (10020) when every input failed: MODEL_BUSY_PLEASE_RETRY and an internal error
    # are worth another try, MODEL_UNTRAINED and a failed download are not.
    body = {
        "status": {"code": 10020, "description": "Failure"},
        "outputs": [_output(21354), _output(98004), _output(21102), _output(30002)],
    }
    results = await _classify(_clarifai, httpx.Response(200, json=body), images=4)
    assert all(isinstance(r, Failure) for r in results)
    assert [r.retryable for r in results] == [True, True, False, False]  # type: ignore[union-attr]


async def test_clarifai_status_names_read_as_their_numbers() -> None:
    # The rate-limit docs' example: "code": "CONN_THROTTLED", with the wait in the headers.
    throttled = httpx.Response(
        429,
        json={"status": {"code": "CONN_THROTTLED", "description": "Making too many requests"}},
        headers={"Retry-After": "15"},
    )
    with pytest.raises(AdapterError) as raised:
        await _classify(_clarifai, throttled)
    assert raised.value.retryable and raised.value.retry_after == 15
    answer = {
        "status": {"code": "SUCCESS", "description": "Ok"},
        "outputs": [{**_output("SUCCESS"), "data": {"concepts": [{"id": "c1", "value": 0.9}]}}],
    }
    (result,) = await _classify(_clarifai, httpx.Response(200, json=answer))
    assert isinstance(result, Answer) and result.labels[0].key == "c1"


@pytest.mark.parametrize(
    ("code", "retryable"),
    [(10030, True), (21351, True), (21355, True), (39997, True), (98010, True), (21102, False)],
)
async def test_clarifai_call_level_codes_decide_the_retry(code: int, retryable: bool) -> None:
    response = httpx.Response(200, json={"status": {"code": code, "description": "..."}})
    with pytest.raises(AdapterError) as raised:
        await _classify(_clarifai, response)
    assert raised.value.retryable is retryable


def _aws(client: httpx.AsyncClient) -> Adapter:
    settings = AwsSettings(endpoint="http://v/", access_key_id="AKID", secret_access_key="s")
    return AwsAdapter(client, settings)


async def test_an_aws_signature_refused_for_the_clock_says_so() -> None:
    expired = {
        "__type": "InvalidSignatureException",
        "message": "Signature expired: 20261130T120000Z is now earlier than 20261130T120500Z "
        "(20261130T121000Z - 5 min.)",
    }
    with pytest.raises(CredentialsError, match="clock is more than 5 minutes off"):
        await _classify(_aws, httpx.Response(400, json=expired))
    # Control: a wrong secret is a refusal of the credentials.
    wrong = {"__type": "InvalidSignatureException", "message": "The request signature we "
             "calculated does not match the signature you provided."}  # fmt: skip
    with pytest.raises(CredentialsError, match="credentials refused"):
        await _classify(_aws, httpx.Response(403, json=wrong))


@pytest.mark.parametrize("code", [11004, "CONN_EXCEED_HOURLY_LIMIT", 11006, 11000])
async def test_a_clarifai_account_over_its_limits_stops_the_request_and_says_why(
    code: int | str,
) -> None:
    body = {"status": {"code": code, "description": "Throttle monthly request limit exceeded"}}
    for status in (402, 429):  # whatever HTTP status comes with it: no retry outlasts a month
        with pytest.raises(CredentialsError, match="out of quota"):
            await _classify(_clarifai, httpx.Response(status, json=body))
    # Control: CONN_THROTTLED is a short wait, retried.
    with pytest.raises(AdapterError) as raised:
        await _classify(_clarifai, httpx.Response(429, json=_output(11005)))
    assert raised.value.retryable and not isinstance(raised.value, CredentialsError)


async def test_google_quota_429_waits_its_retry_info_and_labels_without_a_mid_are_read() -> None:
    quota = {
        "error": {
            "code": 429,
            "status": "RESOURCE_EXHAUSTED",
            "message": "Quota exceeded for quota metric 'Requests' ...",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "RATE_LIMIT_EXCEEDED",
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "31s"},
            ],
        }
    }
    with pytest.raises(AdapterError) as raised:
        await _classify(_google, httpx.Response(429, json=quota))
    assert raised.value.retryable and raised.value.retry_after == 31
    # Control: without RetryInfo (and headers) the backoff decides.
    del quota["error"]["details"][1]
    with pytest.raises(AdapterError) as raised:
        await _classify(_google, httpx.Response(429, json=quota))
    assert raised.value.retry_after is None
    # mid is optional (proto3 JSON drops empty strings): such a label is named by its
    # description, and an annotation with neither is skipped, not a KeyError for all 16 images.
    answer = {"responses": [{"labelAnnotations": [
        {"description": "Cat", "score": 0.9},
        {"mid": "/m/0k4j", "description": "Car", "score": 0.4},
        {"score": 0.3},
    ]}]}  # fmt: skip
    (result,) = await _classify(_google, httpx.Response(200, json=answer))
    assert isinstance(result, Answer)
    assert [(x.key, x.name) for x in result.labels] == [("Cat", "Cat"), ("/m/0k4j", "Car")]


async def test_azure_4_oversize_image_without_an_innererror_fails_that_image_only() -> None:
    oversize = {
        "error": {
            "code": "InvalidRequest",
            "message": "The image size is not allowed to be zero or larger than 20971520 bytes.",
        }
    }
    (result,) = await _classify(_azure, httpx.Response(400, json=oversize))
    assert isinstance(result, Failure) and not result.retryable
    # Control: a 400 about the request, not the image, fails the call.
    config = {"error": {"code": "InvalidRequest", "message": "api-version is required."}}
    with pytest.raises(AdapterError) as raised:
        await _classify(_azure, httpx.Response(400, json=config))
    assert not raised.value.retryable


async def test_an_azure_key_out_of_quota_stops_the_request_and_says_why() -> None:
    body = {"error": {"code": "403", "message": "Out of call volume quota for ComputerVision "
                      "F0 pricing tier. Please retry after 1 day."}}  # fmt: skip
    with pytest.raises(CredentialsError, match="out of quota") as raised:
        await _classify(_azure, httpx.Response(403, json=body))
    assert "credentials refused" not in str(raised.value)
    # Control: a 403 about the key is a refusal of the credentials.
    denied = {"error": {"code": "403", "message": "Access denied."}}
    with pytest.raises(CredentialsError, match="credentials refused"):
        await _classify(_azure, httpx.Response(403, json=denied))


@pytest.mark.parametrize(
    "adapter", [_azure, _google, _clarifai], ids=["azure", "google", "clarifai"]
)
async def test_an_html_error_page_reads_as_its_status(
    adapter: Callable[[httpx.AsyncClient], Adapter],
) -> None:
    page = "<html><body><h1>Service Unavailable</h1></body></html>"
    unavailable = httpx.Response(503, text=page, headers={"Retry-After": "7"})
    with pytest.raises(AdapterError) as raised:
        await _classify(adapter, unavailable)
    assert raised.value.retryable and raised.value.retry_after == 7
    with pytest.raises(AdapterError) as raised:
        await _classify(adapter, httpx.Response(404, text="<html>Not Found</html>"))
    assert not raised.value.retryable  # a wrong endpoint: trying again cannot help


class _Garbled(Adapter):
    """A vendor whose answers this adapter cannot read: a field missing, or too few results."""

    name: ClassVar[str] = "garbled"
    max_images_per_call: ClassVar[int] = 4
    settings_class: ClassVar[type[BaseSettings]] = BaseSettings
    calls = 0

    @property
    def configured(self) -> bool:
        return True

    async def classify(self, images: Sequence[bytes]) -> list[Answer | Failure]:
        type(self).calls += 1
        if type(self).calls % 2:
            return [Answer((Label("a", "a", 1.0),))] * (len(images) - 1)
        raise KeyError("labels")  # as reading a body without the field would


async def test_an_unreadable_answer_fails_its_batch_not_the_request() -> None:
    async with httpx.AsyncClient() as client:
        fanout = FanOut(_Garbled(client, BaseSettings()), FAST)
        results = await fanout.classify(photos(12))
    assert len(results) == 12 and all(isinstance(r, Failure) for r in results)
    reasons = {r.reason.split(" (")[0].split(": ")[1] for r in results}  # type: ignore[union-attr]
    assert reasons <= {"unreadable answer", "3 results for 4 images"}


def test_calls_hold_at_most_the_vendors_images_and_bytes() -> None:
    sizes = [40, 40, 40, 10, 10, 10, 10, 500, 30]
    assert _batches(sizes, 3, 100) == [[0, 1], [2, 3, 4], [5, 6], [7], [8]]
    # Control: without a byte cap, only the count splits.
    assert _batches(sizes, 3, None) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


def test_the_largest_png_of_a_copy_bounds_pure_noise_closely() -> None:
    """What an image is refused on (a copy's PNG over the vendor's limit) is an upper bound of
    the encoder's output on the least compressible copy, and not a loose one."""
    rng = np.random.default_rng(0)
    for width, height in [(1, 1), (32, 32), (640, 480), (1600, 1200), (5000, 7)]:
        noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        size = len(encode_png(noise))
        assert size <= largest_png(width, height) <= 1.002 * size + 1100
    # Upscaled to the vendor's shortest side first: the bound follows the copy's own size.
    small = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert largest_png(32, 32) < len(encode_png(small, 80)) <= largest_png(32, 32, 80)


async def test_a_served_model_gets_batches_of_its_max_batch_and_the_output_it_names() -> None:
    seen: list[int] = []

    def triton(request: httpx.Request) -> httpx.Response:  # max_batch_size 4, two outputs
        body = json.loads(request.content)
        batch = body["inputs"][0]["shape"][0]
        seen.append(batch)
        if batch > 4:
            return httpx.Response(400, json={"error": f"batch size {batch} exceeds 4"})
        assert body["outputs"] == [{"name": "probs"}]
        features = {
            "name": "features",
            "datatype": "FP32",
            "shape": [batch, 2],
            "data": [9.0] * 2 * batch,
        }
        probs = {
            "name": "probs",
            "datatype": "FP32",
            "shape": [batch, 3],
            "data": [0.1, 0.7, 0.2] * batch,
        }
        return httpx.Response(200, json={"model_name": "m", "outputs": [features, probs]})

    settings = KServeSettings(url="http://v", model="m", output_name="probs", max_batch=4)
    async with httpx.AsyncClient(transport=httpx.MockTransport(triton)) as client:
        results = await FanOut(KServeAdapter(client, settings), FAST).classify(photos(10))
    assert seen == [4, 4, 2]
    assert all(isinstance(r, Answer) and r.top().key == "1" for r in results)
    # Control: the default batch (64) is refused whole, every image a failure.
    default = KServeSettings(url="http://v", model="m", output_name="probs")
    async with httpx.AsyncClient(transport=httpx.MockTransport(triton)) as client:
        results = await FanOut(KServeAdapter(client, default), FAST).classify(photos(10))
        identity = KServeAdapter(client, KServeSettings(url="http://v", model="m")).identity
        batched = KServeAdapter(client, KServeSettings(url="http://v", model="m", max_batch=4))
        named = KServeAdapter(client, settings).identity
    assert all(isinstance(r, Failure) for r in results)
    # Batching is not identity; a named output is (another output is another classifier), and
    # the first output by default keeps the identity it had before the setting existed.
    assert batched.identity == identity and "output_name" not in identity
    assert named["output_name"] == "probs"


async def test_a_served_model_gets_calls_under_its_request_size_limit() -> None:
    """Triton refuses a body over --http-max-input-size with a 400: the pixels of six 64 px
    copies as JSON (about 49 kB each) go in calls under a 150 kB limit, three at a time."""
    limit, seen = 150_000, []

    def triton(request: httpx.Request) -> httpx.Response:
        if len(request.content) > limit:
            return httpx.Response(400, json={"error": "request size exceeds the maximum"})
        batch = json.loads(request.content)["inputs"][0]["shape"][0]
        seen.append(batch)
        return httpx.Response(200, json={"outputs": [{"name": "p", "data": [0.2, 0.8] * batch}]})

    settings = KServeSettings(url="http://v", model="m", max_request_bytes=limit)
    async with httpx.AsyncClient(transport=httpx.MockTransport(triton)) as client:
        results = await FanOut(KServeAdapter(client, settings), FAST).classify(photos(6, 64))
        assert seen == [3, 3] and all(isinstance(r, Answer) for r in results)
        # Control: under the default 64 MiB the six go in one call, over this server's limit.
        default = KServeSettings(url="http://v", model="m")
        results = await FanOut(KServeAdapter(client, default), FAST).classify(photos(6, 64))
    assert seen == [3, 3] and all(isinstance(r, Failure) for r in results)


@pytest.mark.subprocess
@pytest.mark.slow
async def test_large_photos_stay_under_googles_request_size() -> None:
    # 16 noisy 640 px PNGs of ~1.2 MB: one call of 16 would carry ~26 MB of base64.
    images = [encode_png(np.random.default_rng(i).integers(0, 256, (640, 640, 3), np.uint8))
              for i in range(16)]  # fmt: skip
    assert sum(map(len, images)) * 4 / 3 > fake_google.MAX_REQUEST_BYTES
    fake = FakeState()
    with live_server(fake_google.build(fake)) as url:
        async with httpx.AsyncClient(timeout=60) as client:
            adapter = GoogleAdapter(
                client, GoogleSettings(endpoint=url, api_key=SecretStr("good-key"))
            )
            results = await FanOut(adapter, NO_WAIT).classify(images)
            assert all(isinstance(r, Answer) for r in results), results[0]
            # Control: the same images in one call are refused by the vendor's size cap.
            with pytest.raises(AdapterError, match="payload size exceeds"):
                await adapter.classify(images)
    assert fake.calls >= 4


async def test_images_that_failed_alone_wait_before_they_are_asked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []
    sleep, here = asyncio.sleep, threading.get_ident()

    async def recorded(delay: float) -> None:  # this thread's waits, without spending them
        if threading.get_ident() != here:  # another test's server, in its own thread
            return await sleep(delay)
        waits.append(delay)
        return await sleep(0)

    monkeypatch.setattr(asyncio, "sleep", recorded)
    policy = FanOutPolicy(max_attempts=3, backoff_base_s=0.2, backoff_max_s=0.2)
    async with httpx.AsyncClient() as client:
        results = await FanOut(_Busy(client, BaseSettings()), policy).classify(photos(2))
    assert all(isinstance(r, Failure) for r in results) and _Busy.calls == 3
    # Two rounds after the first, each at least what the vendor asked for (0.3 s).
    assert len(waits) == 2 and min(waits) >= 0.3


class _Busy(_Garbled):
    """Every image fails with a transient error that asks for 0.3 s."""

    calls = 0

    async def classify(self, images: Sequence[bytes]) -> list[Answer | Failure]:
        type(self).calls += 1
        return [Failure("busy", retryable=True, retry_after=0.3)] * len(images)
