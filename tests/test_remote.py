"""POST /v1/certify with each remote classifier, end to end against its fake on loopback."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from scipy.stats import beta

from service.adapters.prepare import largest_png
from service.api.app import create_app
from service.config import Settings
from service.examples import example_image
from service.testing.fakes import aws as fake_aws
from service.testing.fakes import azure as fake_azure
from service.testing.fakes import clarifai as fake_clarifai
from service.testing.fakes import google as fake_google
from service.testing.fakes import kserve as fake_kserve
from service.testing.fakes.common import FakeState
from service.testing.live_server import live_server
from tests.conftest import SHARED

pytestmark = pytest.mark.anyio

# vendor -> (fake app builder, environment for the adapter given the fake's URL, reported version)
VENDORS: dict[str, tuple[Callable, Callable[[str], dict[str, str]], str]] = {
    "azure": (
        fake_azure.build,
        lambda url: {"DSMOOTH_AZURE_ENDPOINT": url, "DSMOOTH_AZURE_KEY": "good-key"},
        "2024-02-01",
    ),
    "google": (
        fake_google.build,
        lambda url: {"DSMOOTH_GOOGLE_ENDPOINT": url, "DSMOOTH_GOOGLE_API_KEY": "good-key"},
        "as reported",
    ),
    "aws": (
        fake_aws.build,
        lambda url: {
            "DSMOOTH_AWS_ENDPOINT": url + "/",
            "DSMOOTH_AWS_ACCESS_KEY_ID": "AKIDFAKE",
            "DSMOOTH_AWS_SECRET_ACCESS_KEY": "fake-secret-key",
        },
        "3.0",
    ),
    "clarifai": (
        fake_clarifai.build,
        lambda url: {"DSMOOTH_CLARIFAI_ENDPOINT": url, "DSMOOTH_CLARIFAI_PAT": "good-key"},
        "2024-02-01",
    ),
    "kserve": (
        fake_kserve.build,
        lambda url: {
            "DSMOOTH_KSERVE_URL": url,
            "DSMOOTH_KSERVE_MODEL": "colours",
            "DSMOOTH_KSERVE_TOKEN": "good-key",
        },
        "1",
    ),
}


def sample_photo() -> bytes:
    """An ImageNet sample photo from ../shared when present, else scikit-image's coffee cup."""
    path = SHARED / "data/imagenet-samples/images/n02504458_African_elephant.JPEG"
    if path.exists():
        return path.read_bytes()
    buffer = io.BytesIO()
    example_image("coffee", size=160).save(buffer, format="PNG")
    return buffer.getvalue()


@contextmanager
def vendor_env(name: str, monkeypatch: pytest.MonkeyPatch, **state: object) -> Iterator[FakeState]:
    build, env, _ = VENDORS[name]
    fake = FakeState(**state)  # type: ignore[arg-type]
    with live_server(build(fake)) as url:
        for key, value in env(url).items():
            monkeypatch.setenv(key, value)
        yield fake


async def _client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://asgi") as client:
            yield client


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    from denoisers.checkpoints import save_checkpoint
    from denoisers.classifiers import cifar_resnet

    path = tmp_path / "r20.safetensors"
    save_checkpoint(path, cifar_resnet(20).state_dict(), {"architecture": "cifar-resnet20"})
    return Settings(
        environment="development",
        classifier=f"cifar-resnet20:{path}",
        denoiser="none",
        device="cpu",
    )


def _form(**fields: object) -> dict[str, object]:
    return {
        "files": {"image": ("photo.jpg", sample_photo(), "image/jpeg")},
        "data": {k: str(v) for k, v in fields.items()},
    }


@pytest.mark.parametrize("vendor", sorted(VENDORS))
@pytest.mark.subprocess
@pytest.mark.slow
async def test_certify_with_a_remote_classifier_end_to_end(
    vendor: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with vendor_env(vendor, monkeypatch) as fake:
        async for client in _client(settings):
            listed = {c["name"]: c for c in (await client.get("/v1/classifiers")).json()}
            assert listed[vendor]["kind"] == "remote" and listed[vendor]["credentials_configured"]
            response = await client.post(
                "/v1/certify",
                **_form(classifier=vendor, sigma=0.12, candidate="clean", n0=0, n=60),
            )
            assert response.status_code == 200, response.text
            certificate = response.json()
            billed = fake.images
            again = await client.post(
                "/v1/certify",
                **_form(classifier=vendor, sigma=0.12, candidate="clean", n0=0, n=60),
            )
    assert certificate["classifier"] == {"name": vendor, "version": VENDORS[vendor][2]}
    assert certificate["queries"] == {"total": 61, "cached": 0, "failed": 0}
    assert certificate["cost"] == pytest.approx(61 * listed[vendor]["price_per_query"])
    counts = {c["key"]: c["count"] for c in certificate["top_counts"]}
    if certificate["label"] is not None:
        n_a = counts[certificate["label_key"]]
        assert certificate["p_lower"] == pytest.approx(
            beta.ppf(certificate["ledger"]["alpha_spent"], n_a, 60 - n_a + 1)
        )
    assert billed >= 60  # every copy went to the vendor (61 with the clean query)
    # The repeat is answered wholly from the vote store, the clean-image query included.
    assert again.json()["queries"] == {"total": 61, "cached": 61, "failed": 0}
    assert again.json()["top_counts"] == certificate["top_counts"]
    assert (again.json()["label"], again.json()["radius"]) == (
        certificate["label"],
        certificate["radius"],
    )
    assert fake.images == billed  # nothing went out again


@pytest.mark.subprocess
@pytest.mark.slow
async def test_failed_copies_count_against_the_candidate(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with vendor_env("google", monkeypatch) as fake:
        async for client in _client(settings):
            fake.faults.server_error = 10_000  # the vendor is down for good
            monkeypatch.setenv("DSMOOTH_GOOGLE_ENDPOINT", "http://127.0.0.1:9")  # unused below
            response = await client.post(
                "/v1/certify",
                **_form(classifier="google", sigma=0.12, candidate="noisy", n0=16, n=32),
            )
    assert response.status_code == 200, response.text
    certificate = response.json()
    assert certificate["abstained"] and certificate["queries"]["failed"] == 48
    assert certificate["radius"] == 0.0


@pytest.mark.subprocess
@pytest.mark.slow
async def test_failed_queries_are_never_stored_and_a_repeat_asks_again(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    form = _form(classifier="google", sigma=0.25, candidate="clean", n0=0, n=48)
    with vendor_env("google", monkeypatch) as fake:
        async for client in _client(settings):
            # A quarter of the copies fail for good (the clean-image query, the first, does not).
            fake.faults.image_error_every, fake.faults.image_error_retryable = 4, False
            first = (await client.post("/v1/certify", **form)).json()
            fake.faults.image_error_every = 0  # the vendor recovers
            billed = fake.images
            second = (await client.post("/v1/certify", **form)).json()
            third = (await client.post("/v1/certify", **form)).json()
            metrics = await client.get("/metrics")
    assert first["queries"]["failed"] > 0
    # Only the clean-image answer was stored: the chunk with failures is asked again, in full.
    assert second["queries"] == {"total": 49, "cached": 1, "failed": 0}
    assert fake.images - billed == 48
    assert second["cost"] == pytest.approx(48 * 0.0015)
    # Once answered in full, the repeat comes from the store, with the same certificate.
    assert third["queries"] == {"total": 49, "cached": 49, "failed": 0} and third["cost"] == 0
    assert (third["label"], third["radius"]) == (second["label"], second["radius"])
    assert metrics.status_code == 200
    assert 'outcome="failed"} ' in metrics.text


@pytest.mark.subprocess
@pytest.mark.slow
async def test_refused_vendor_credentials_are_a_clear_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with vendor_env("azure", monkeypatch) as fake:
        monkeypatch.setenv("DSMOOTH_AZURE_KEY", "revoked-key")
        async for client in _client(settings):
            response = await client.post("/v1/certify", **_form(classifier="azure", n0=5, n=20))
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/problem+json"
    assert "credentials refused" in response.json()["detail"]
    assert "revoked-key" not in response.text and fake.images == 0


@pytest.mark.parametrize(
    ("vendor", "shape"),
    [("google", "key-invalid-bare"), ("google", "permission-denied"), ("clarifai", "11102"),
     ("aws", "UnrecognizedClientException"), ("kserve", "401-text")],
)  # fmt: skip
@pytest.mark.subprocess
@pytest.mark.slow
async def test_a_wrong_key_in_any_documented_shape_is_a_502_before_anything_is_billed(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, vendor: str, shape: str
) -> None:
    with vendor_env(vendor, monkeypatch) as fake:
        fake.faults.refusal = shape
        async for client in _client(settings):
            response = await client.post("/v1/certify", **_form(classifier=vendor, n0=5, n=20))
            again = await client.post("/v1/certify", **_form(classifier=vendor, n0=5, n=20))
    assert response.status_code == again.status_code == 502, response.text
    assert "credentials refused" in response.json()["detail"]
    assert fake.images == 0 and fake.calls == 2  # the clean-image query of each, nothing more


async def test_an_unconfigured_vendor_is_refused_before_sampling(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("DSMOOTH_CLARIFAI_PAT", "DSMOOTH_CLARIFAI_ENDPOINT"):
        monkeypatch.delenv(variable, raising=False)
    async for client in _client(settings):
        response = await client.post("/v1/certify", **_form(classifier="clarifai", n=20))
    assert response.status_code == 422
    assert "DSMOOTH_CLARIFAI_" in response.json()["detail"]


@pytest.mark.subprocess
@pytest.mark.slow
async def test_paid_classifiers_are_capped_at_10000_queries(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with vendor_env("aws", monkeypatch) as fake:
        async for client in _client(settings):
            response = await client.post("/v1/certify", **_form(classifier="aws", n=10_000))
    assert response.status_code == 422 and "cap of 10,000" in response.json()["detail"]
    assert fake.calls == 0


@pytest.mark.subprocess
@pytest.mark.slow
async def test_a_vendor_model_update_mid_certification_refuses_the_certificate(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = io.BytesIO()
    example_image("coffee", size=64).save(small, format="PNG")
    form = {"files": {"image": ("coffee.png", small.getvalue(), "image/png")}}
    # The 20 selection copies are answered by the old model, the estimation by the new one.
    with vendor_env("clarifai", monkeypatch, upgrade_at=20) as fake:
        async for client in _client(settings):
            response = await client.post(
                "/v1/certify",
                **form,
                data={"classifier": "clarifai", "candidate": "noisy", "n0": "20", "n": "100"},
            )
    assert response.status_code == 503, response.text
    assert "2024-02-01, 2025-01-01" in response.json()["detail"]
    assert fake.model_version == "2025-01-01"


@pytest.mark.subprocess
@pytest.mark.slow
async def test_paid_classifiers_default_to_the_clean_candidate_and_sequential_saves(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with vendor_env("google", monkeypatch) as fake:
        async for client in _client(settings):
            response = await client.post(
                "/v1/certify",
                **_form(classifier="google", sigma=0.12, mode="sequential", target_radius=0.05,
                        n=2000, first_look=16),
            )  # fmt: skip
    assert response.status_code == 200, response.text
    certificate = response.json()
    assert certificate["candidate_source"] == "clean" and certificate["n0"] == 0
    assert certificate["stop_reason"] in {"target_certified", "target_unreachable",
                                          "target_unlikely"}  # fmt: skip
    assert certificate["queries"]["total"] == certificate["n"] + 1 == fake.images
    savings = certificate["savings"]
    assert savings["fixed_n_queries"] == 2100
    assert savings["queries_saved"] == 2100 - certificate["queries"]["total"] > 0


@pytest.mark.subprocess
@pytest.mark.slow
async def test_a_request_over_its_cost_budget_is_refused_before_any_query(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with vendor_env("azure", monkeypatch) as fake:
        async for client in _client(settings):
            response = await client.post(
                "/v1/certify", **_form(classifier="azure", n=1000, max_cost=0.5)
            )
    assert response.status_code == 422 and "max_cost" in response.json()["detail"]
    assert fake.calls == 0


def _photo(width: int, height: int) -> dict[str, object]:
    """A smooth photo of that size: a small upload, whatever its pixel count."""
    buffer = io.BytesIO()
    example_image("coffee", size=64).resize((width, height)).save(buffer, format="PNG")
    return {"files": {"image": ("photo.png", buffer.getvalue(), "image/png")}}


@pytest.mark.subprocess
@pytest.mark.slow
async def test_an_image_whose_copies_the_vendor_may_refuse_as_too_large_is_refused_first(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS takes images of at most 5 MB: a noisy 1600 x 1200 copy is a 5.5 MiB PNG, and each of
    the n copies would fail. Refused before anything is billed, with the size that fits."""
    fields = {"data": {"classifier": "aws", "candidate": "clean", "n0": "0", "n": "4"}}
    with vendor_env("aws", monkeypatch) as fake:
        async for client in _client(settings):
            large = await client.post("/v1/certify", **_photo(1600, 1200), **fields)
            job = await client.post("/v1/jobs", **_photo(1600, 1200), **fields)
            assert fake.calls == 0
            fits = await client.post("/v1/certify", **_photo(1200, 900), **fields)  # control
    for refused in (large, job):
        assert refused.status_code == 413, refused.text
        problem = refused.json()
        assert problem["type"].endswith("/image-too-large-for-classifier")
        assert "1600x1200" in problem["detail"] and "5.0 MiB aws" in problem["detail"]
        side = int(problem["detail"].rsplit("about ", 1)[1].split(" px")[0])
        assert 1400 < side < 1600 and largest_png(side, side * 3 // 4, 80) <= 5 * 2**20
    assert fits.status_code == 200, fits.text
    assert fits.json()["queries"]["failed"] == 0 and fake.images == 5


@pytest.mark.subprocess
@pytest.mark.slow
async def test_a_label_map_is_a_stream_of_the_unmapped_ledger_and_named_in_the_certificate() -> (
    None
):
    """A map only merges a classifier's answers: every map shares the classifier's ledger, each
    a stream of its own, so a map that changes nothing ({"0": "0"}) is no fresh ledger to fish
    in; and the signed certificate names the map, which no one can then change or drop."""
    import json

    from denoisers.registry import load_denoiser
    from service.adapters.fanout import FanOut, FanOutPolicy
    from service.adapters.kserve import KServeAdapter, KServeSettings
    from service.core.certifier import Certifier
    from service.core.ledger import InMemoryLedger
    from service.core.results import CertifyParams
    from service.core.signing import Signer, new_private_key_pem, verify_certificate
    from service.execution.local import LocalDenoiser
    from service.execution.remote import RemoteSampler
    from service.imaging import decode_image

    image = decode_image(sample_photo())[:, :40, :40].contiguous()
    ledger, signer = InMemoryLedger(), Signer.from_pem(new_private_key_pem())
    with live_server(fake_kserve.build(FakeState(keys=set()))) as url:
        settings = KServeSettings(url=url, model="colours", labels=fake_kserve.LABELS)
        async with httpx.AsyncClient() as client:
            fanout = FanOut(KServeAdapter(client, settings), FanOutPolicy())
            denoiser = LocalDenoiser(load_denoiser("none"), device="cpu")
            certificates = []
            for label_map in (None, {"0": "0"}, {"0": "0"}, {"1": "0"}):
                sampler = RemoteSampler("kserve", denoiser, fanout, label_map)
                certifier = Certifier(sampler, b"test-secret", ledger=ledger)
                result = await certifier.certify(image, CertifyParams(sigma=0.25, n0=8, n=24))
                certificates.append(json.loads(signer.signed(result).model_dump_json()))
    assert [c["ledger"]["stream"] for c in certificates] == [1, 2, 2, 3]
    assert [c["label_map"] for c in certificates] == [None, {"0": "0"}, {"0": "0"}, {"1": "0"}]
    mapped = certificates[3]
    assert verify_certificate(mapped, signer.jwks()) == []
    for forged in ({**mapped, "label_map": {"2": "0"}}, {**mapped, "label_map": None}):
        assert any("signature" in p for p in verify_certificate(forged, signer.jwks()))


BASE_KSERVE = {"model": "colours", "version": "", "label_map": None, "denoiser": "none"}


@pytest.mark.subprocess
@pytest.mark.slow
@pytest.mark.parametrize(
    ("component", "change"),
    [
        ("endpoint URL", {"url": "second"}),
        ("model name", {"model": "shapes"}),
        ("pinned model version", {"version": "2"}),
        ("label map", {"label_map": {"0": "1"}}),
        ("denoiser", {"denoiser": "unet-cifar10-s0.25-mse"}),
        ("adapter option", {"input_name": "pixels"}),
        ("sigma", {"sigma": 0.5}),
    ],
)
async def test_each_part_of_the_base_classifier_is_in_the_vote_store_key(
    component: str, change: dict[str, object]
) -> None:
    """Certify once, change one part of the base classifier, certify again with the same vote
    store: nothing may come from the store. The control (nothing changed) is all from it."""
    from denoisers.registry import load_denoiser
    from service.adapters.fanout import FanOut, FanOutPolicy
    from service.adapters.kserve import KServeAdapter, KServeSettings
    from service.core.certifier import Certifier
    from service.core.results import CertifyParams
    from service.core.votes import InMemoryVoteStore
    from service.execution.local import LocalDenoiser
    from service.execution.remote import RemoteSampler
    from service.imaging import decode_image

    image = decode_image(sample_photo())[:, :40, :40].contiguous()
    store = InMemoryVoteStore()
    with (
        live_server(fake_kserve.build(FakeState(keys=set()), ("colours", "shapes"))) as first,
        live_server(fake_kserve.build(FakeState(keys=set()), ("colours", "shapes"))) as second,
    ):
        urls = {"first": first, "second": second}
        fanouts: dict[str, FanOut] = {}  # one per vendor configuration, as in the server

        async def certify(config: dict[str, object]) -> int:
            settings = KServeSettings(
                url=urls[str(config.get("url", "first"))], model=str(config["model"]),
                version=str(config["version"]),
                input_name=str(config.get("input_name", "input")), labels=fake_kserve.LABELS,
            )  # fmt: skip
            async with httpx.AsyncClient() as client:
                fanout = fanouts.setdefault(
                    settings.model_dump_json(),
                    FanOut(KServeAdapter(client, settings), FanOutPolicy()),
                )
                fanout.adapter.client = client
                denoiser = LocalDenoiser(load_denoiser(str(config["denoiser"])), device="cpu")
                label_map = config["label_map"]
                sampler = RemoteSampler("kserve", denoiser, fanout, label_map)  # type: ignore[arg-type]
                params = CertifyParams(
                    sigma=float(config.get("sigma", 0.25)), n0=8, n=24, alpha=0.01
                )
                result = await Certifier(sampler, b"test-secret", store).certify(image, params)
            return result.queries.cached

        assert await certify(BASE_KSERVE) == 0
        assert await certify(BASE_KSERVE) == 24 + 8  # the control: all from the store
        assert await certify({**BASE_KSERVE, **change}) == 0, component
