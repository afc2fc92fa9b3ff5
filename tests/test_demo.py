"""The demo page in a real browser (Debian's Chromium through Playwright)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.api.app import create_app
from service.config import Settings
from service.examples import example_image
from service.testing.live_server import live_server

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with live_server(create_app(Settings(denoiser="none"))) as url:
        yield url


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "cat.png"
    example_image("chelsea", size=32).save(path)
    return path


def test_the_page_and_its_assets_are_served(server: str) -> None:
    page = httpx.get(server + "/")
    assert page.status_code == 200 and "denoised-smoothing" in page.text
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    assert httpx.get(server + "/demo/app.js").headers["content-type"].startswith("text/javascript")
    sample = httpx.get(server + "/demo/samples/chelsea.png")
    assert sample.content.startswith(b"\x89PNG")
    assert httpx.get(server + "/demo/../service/api/app.py").status_code == 404


def test_preview_returns_noisy_and_denoised_copies(server: str, photo: Path) -> None:
    body = {"image": base64.b64encode(photo.read_bytes()).decode(), "k": 4, "sigma": 0.5}
    answer = httpx.post(server + "/v1/preview", json=body, timeout=60).json()
    assert len(answer["noisy"]) == len(answer["denoised"]) == 4
    assert all(url.startswith("data:image/png;base64,") for url in answer["noisy"])
    again = httpx.post(server + "/v1/preview", json=body, timeout=60).json()
    assert again["noisy"] != answer["noisy"]  # fresh noise, never the certification's


@pytest.mark.browser
def test_a_certification_in_the_browser(server: str, photo: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        page = browser.new_page()
        page.goto(server + "/")
        expect(page.locator("#classifier option")).not_to_have_count(0)
        page.set_input_files("#file", str(photo))
        page.fill("#n", "500")
        page.select_option("#sigma", "0.12")
        page.click("#preview")
        expect(page.locator("#noisy img")).to_have_count(8)
        expect(page.locator("#denoised img")).to_have_count(8)
        page.click("#certify")
        expect(page.locator("#result")).to_be_visible(timeout=120_000)
        label, radius = page.text_content("#label"), page.text_content("#radius")
        shots = ROOT / "build/screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "demo.png"), full_page=True)
        browser.close()
    # The same request through the API: same secret, same image, so the same certificate.
    buffer = io.BytesIO(photo.read_bytes())
    certificate = httpx.post(
        server + "/v1/certify",
        files={"image": ("cat.png", buffer, "image/png")},
        data={"n": "500", "sigma": "0.12"},
        timeout=120,
    ).json()
    if certificate["abstained"]:
        assert label == "Abstained"
    else:
        assert label == f"Label: {certificate['label']}"
        assert radius == f"— certified radius {certificate['radius']:.4f}"
    assert certificate["queries"]["cached"] == certificate["queries"]["total"]  # the page's request


@pytest.mark.browser
def test_the_page_shows_a_certificates_warnings(server: str, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import expect, sync_playwright

    large, small = tmp_path / "large.png", tmp_path / "small.png"
    example_image("chelsea", size=224).save(large)  # far from the 32 px CIFAR-10 model
    example_image("chelsea", size=32).save(small)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        page = browser.new_page()
        page.goto(server + "/")
        expect(page.locator("#denoiser option")).not_to_have_count(0)
        assert page.input_value("#denoiser") == ""  # auto: the one trained for sigma
        page.fill("#n", "20")
        page.set_input_files("#file", str(large))
        page.click("#certify")
        expect(page.locator("#warnings")).to_be_visible(timeout=120_000)
        expect(page.locator("#warnings li")).to_have_count(1)
        expect(page.locator("#warnings li")).to_contain_text("224x224 px")
        page.set_input_files("#file", str(small))  # the control: no warning
        page.click("#certify")  # hides the last result at once, shows the new one at the end
        expect(page.locator("#result")).to_be_visible(timeout=120_000)
        expect(page.locator("#warnings")).to_be_hidden()
        browser.close()


def test_docs_and_redoc_load_their_assets_from_the_app(server: str) -> None:
    """/docs and /redoc work offline: every script, style and icon comes from the app itself."""
    import re

    for path in ("/docs", "/redoc"):
        page = httpx.get(server + path)
        assert page.status_code == 200
        urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", page.text)
        assert urls, page.text
        assert "googleapis" not in page.text and "cdn" not in page.text.lower()
        for url in urls:
            assert url.startswith("/"), f"{path} loads {url} from another host"
            assert httpx.get(server + url).status_code == 200, url
        assert re.search(r"https?://(?!www\.w3\.org)", page.text) is None, page.text


@pytest.mark.browser
def test_the_page_on_a_phone(server: str, tmp_path: Path) -> None:
    """390 px wide: no horizontal scroll; a spinner while a request runs; what the classifier
    sees (the resized copies) and the warnings; nothing stale after a new submit."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    import time

    from playwright.sync_api import Route, expect, sync_playwright

    large = tmp_path / "large.png"
    example_image("chelsea", size=224).save(large)  # the CIFAR-10 model sees it at 32 px

    def slowly(route: Route) -> None:
        time.sleep(1.5)  # long enough to see the spinner
        route.continue_()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": 390, "height": 844})
        width = "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
        page.goto(server + "/")
        expect(page.locator("#classifier option")).not_to_have_count(0)
        assert page.evaluate(width) <= 390
        page.set_input_files("#file", str(large))
        page.fill("#n", "20")
        page.click("#certify")
        expect(page.locator("#result")).to_be_visible(timeout=120_000)
        expect(page.locator("#warnings li")).to_have_count(1)
        assert page.evaluate(width) <= 390  # the votes and the accounting fit too

        page.route("**/v1/preview", slowly)
        page.click("#preview")
        expect(page.locator("#busy")).to_be_visible()
        expect(page.locator("#result")).to_be_hidden()  # the last certificate is gone at once
        expect(page.locator("#warnings li")).to_have_count(0)
        expect(page.locator("#seen img")).to_have_count(8, timeout=60_000)
        side = "32\N{MULTIPLICATION SIGN}32 px"
        expect(page.locator("#seen-size")).to_have_text(side)
        expect(page.locator("#preview-warnings li")).to_contain_text(f"resized to {side}")
        expect(page.locator("#busy")).to_be_hidden()
        assert page.evaluate(width) <= 390

        page.fill("#n", "0")  # below the minimum: an error
        page.click("#certify")
        expect(page.locator("#error")).to_be_visible(timeout=60_000)
        expect(page.locator("#copies")).to_be_hidden()  # the previews went with the new submit
        page.fill("#n", "20")
        page.click("#preview")
        expect(page.locator("#error")).to_be_hidden()  # and the error with the next one
        expect(page.locator("#seen img")).to_have_count(8, timeout=60_000)
        shots = ROOT / "build/screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "demo-390.png"), full_page=True)
        browser.close()
