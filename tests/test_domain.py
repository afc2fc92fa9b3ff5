"""Honest defaults (#21 item 3): results say when the image is far from the classifier's domain
or the denoiser was trained for another sigma; sigma stays in (0, 1]; a sigma no denoiser is
trained for is refused instead of quietly using the default."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from service.api.app import create_app
from service.cli.main import main
from service.config import Settings
from service.core.domain import Domain, image_warnings, sigma_warnings
from service.core.signing import verify_certificate
from service.examples import example_image

pytestmark = pytest.mark.anyio

TRAINED = "0.12, 0.25, 0.5, 1"  # the sigmas of the shipped unet-cifar10-*-mse family


def _png(size: int) -> bytes:
    buffer = io.BytesIO()
    example_image("chelsea", size).save(buffer, format="PNG")
    return buffer.getvalue()


async def _client(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    values: dict[str, Any] = {"environment": "development", "device": "cpu"}
    app = create_app(Settings(**{**values, **overrides}))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://asgi") as client:
            yield client


@pytest.fixture
async def plain() -> AsyncIterator[httpx.AsyncClient]:
    """The shipped CIFAR-10 ResNet-20 without a denoiser (cheap on large images)."""
    async for client in _client(denoiser="none"):
        yield client


@pytest.fixture
async def denoised() -> AsyncIterator[httpx.AsyncClient]:
    """The shipped default pair: ResNet-20 and the U-Net trained for sigma 0.25."""
    async for client in _client():
        yield client


def _certify(image: bytes, **fields: object) -> dict[str, Any]:
    return {
        "files": {"image": ("image.png", image, "image/png")},
        "data": {"n0": "5", "n": "20", **{k: str(v) for k, v in fields.items()}},
    }


def test_far_is_measured_against_the_declared_domain() -> None:
    cifar = Domain("CIFAR-10 photos, 32x32", 32, 10)
    assert image_warnings("c", cifar, (3, 32, 32)) == []
    assert image_warnings("c", cifar, (3, 64, 64)) == []  # 2x: how thumbnails are made
    [shrunk] = image_warnings("c", cifar, (3, 224, 224))
    assert "224x224 px" in shrunk and "shrunk 7x to 32x32" in shrunk
    imagenet = Domain("ImageNet photos", 224, 1000)
    assert image_warnings("i", imagenet, (3, 375, 500)) == []  # an ordinary photo
    [enlarged] = image_warnings("i", imagenet, (3, 32, 32))
    assert "enlarged 7x" in enlarged
    assert any("squeezed" in w for w in image_warnings("i", imagenet, (3, 224, 448)))
    vendor = Domain("photos", None, None, min_side=100)
    assert image_warnings("google", vendor, (3, 300, 400)) == []
    [small] = image_warnings("google", vendor, (3, 32, 32))
    assert "google" in small and "at least 100 px" in small
    assert image_warnings("any", Domain(None, None, None), (3, 5, 5000)) == []
    assert sigma_warnings("d", 0.25, 0.25) == [] and sigma_warnings("none", None, 0.5) == []
    assert "trained for sigma 0.25, not 0.5" in sigma_warnings("d", 0.25, 0.5)[0]


async def test_a_large_photo_into_a_cifar_model_is_flagged_and_still_verifies(
    plain: httpx.AsyncClient,
) -> None:
    keys = (await plain.get("/v1/signing-keys")).json()
    large = await plain.post("/v1/certify", **_certify(_png(224), sigma=0.25))
    assert large.status_code == 200, large.text
    certificate = large.json()
    [warning] = certificate["warnings"]
    assert "224x224 px" in warning and "cifar10-resnet20" in warning and "32x32" in warning
    # The signature covers the warnings: dropping one breaks it.
    assert verify_certificate(certificate, keys) == []
    quiet = {**certificate, "warnings": []}
    assert any("signature" in p for p in verify_certificate(quiet, keys))
    # The control: a 32 px image is what the model was made for.
    small = await plain.post("/v1/certify", **_certify(_png(32), sigma=0.25))
    assert small.status_code == 200 and small.json()["warnings"] == []
    predict = {"image": base64.b64encode(_png(224)).decode(), "n": 20}
    prediction = await plain.post("/v1/predict", json=predict)
    assert prediction.status_code == 200 and len(prediction.json()["warnings"]) == 1


async def test_catalog_declares_each_classifiers_domain(plain: httpx.AsyncClient) -> None:
    classifiers = {c["name"]: c for c in (await plain.get("/v1/classifiers")).json()}
    local = classifiers["cifar10-resnet20"]
    assert local["input_size"] == 32 and local["classes"] == 10
    assert "CIFAR-10" in local["images"]
    assert "photos" in classifiers["google"]["images"] and classifiers["google"]["classes"] is None


@pytest.mark.parametrize("path", ["/v1/certify", "/v1/predict", "/v1/jobs", "/v1/preview"])
async def test_sigma_beyond_one_is_refused_everywhere(plain: httpx.AsyncClient, path: str) -> None:
    body = {"image": base64.b64encode(_png(32)).decode(), "sigma": 2}
    response = await plain.post(path, json=body)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["sigma"]
    multipart = await plain.post(path, **_certify(_png(32), sigma=2))
    assert multipart.status_code == 422


async def test_a_sigma_without_a_trained_denoiser_is_refused_with_the_trained_ones(
    denoised: httpx.AsyncClient,
) -> None:
    image = base64.b64encode(_png(32)).decode()
    for path in ("/v1/certify", "/v1/predict", "/v1/jobs", "/v1/preview"):
        response = await denoised.post(path, json={"image": image, "sigma": 0.3})
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["type"] == "/problems/no-denoiser-for-sigma"
        assert f"trained for sigma {TRAINED}" in problem["detail"]
        assert problem["errors"] == [{"field": "sigma", "message": f"trained sigmas: {TRAINED}"}]
    # Named, any denoiser is used at any sigma, and says so.
    named = await denoised.post("/v1/certify", **_certify(_png(32), sigma=0.3, denoiser="none"))
    assert named.status_code == 200 and named.json()["warnings"] == []  # 'none' declares none


async def test_a_denoiser_named_for_another_sigma_is_flagged(
    denoised: httpx.AsyncClient,
) -> None:
    keys = (await denoised.get("/v1/signing-keys")).json()
    chosen = await denoised.post("/v1/certify", **_certify(_png(32), sigma=0.5))
    assert chosen.json()["denoiser"]["name"] == "unet-cifar10-s0.5-mse"
    assert chosen.json()["warnings"] == []
    response = await denoised.post(
        "/v1/certify", **_certify(_png(32), sigma=0.5, denoiser="unet-cifar10-s0.25-mse")
    )
    assert response.status_code == 200, response.text
    certificate = response.json()
    assert certificate["denoiser"]["name"] == "unet-cifar10-s0.25-mse"
    [warning] = certificate["warnings"]
    assert "trained for sigma 0.25, not 0.5" in warning and "unet-cifar10-s0.5-mse" in warning
    assert verify_certificate(certificate, keys) == []


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exit:
        code = int(exit.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_cli_refuses_what_the_api_refuses_and_prints_warnings(
    capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    small, large = tmp_path / "small.png", tmp_path / "large.png"
    small.write_bytes(_png(32))
    large.write_bytes(_png(224))
    common = ["--n0", "5", "--n", "20", "--no-progress", "--device", "cpu"]
    code, _, err = _cli(capsys, "certify", str(small), "--sigma", "2", *common)
    assert code == 2 and "sigma" in err and "1" in err
    code, _, err = _cli(capsys, "predict", str(small), "--sigma", "2", "--n", "20")
    assert code == 2 and "sigma" in err
    code, _, err = _cli(capsys, "certify", str(small), "--sigma", "0.3", *common)
    assert code == 2 and f"trained for sigma {TRAINED}" in err
    code, out, err = _cli(capsys, "certify", str(large), "--denoiser", "none", *common)
    assert code == 0, err
    warnings = [line for line in out.splitlines() if line.startswith("warning ")]
    assert len(warnings) == 1 and "224x224 px" in warnings[0]
    code, out, err = _cli(capsys, "certify", str(small), "--sigma", "0.5",
                          "--denoiser", "unet-cifar10-s0.25-mse", *common)  # fmt: skip
    assert code == 0, err
    assert "warning     the denoiser unet-cifar10-s0.25-mse was trained for sigma 0.25" in out
    code, out, err = _cli(capsys, "certify", str(small), "--sigma", "0.5", *common)
    assert code == 0 and "unet-cifar10-s0.5-mse" in out and "warning" not in out
