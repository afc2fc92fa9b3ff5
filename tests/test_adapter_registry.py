import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from denoisers.checkpoints import save_checkpoint
from denoisers.classifiers import cifar_resnet
from service.adapters import registry
from service.adapters.base import Answer
from service.adapters.local import LocalAdapter, LocalAdapterSettings
from service.adapters.prepare import encode_png
from service.adapters.registry import AdapterUnavailable, adapter_class, adapters


def test_built_in_adapters_are_listed_and_read_only() -> None:
    names = adapters()
    assert {"azure", "google", "aws", "clarifai", "kserve", "local"} <= set(names)
    with pytest.raises(TypeError):
        names["mine"] = "x:y"  # type: ignore[index]


def test_unknown_adapters_name_the_known_ones() -> None:
    with pytest.raises(AdapterUnavailable, match=r"known: .*google"):
        adapter_class("watson")


def test_a_missing_optional_dependency_gives_an_install_hint(monkeypatch) -> None:
    monkeypatch.setitem(registry._RUNTIME_IMPORTS, "aws", "botocore_that_is_not_installed")
    with pytest.raises(AdapterUnavailable, match=r"pip install 'denoised-smoothing\[aws\]'"):
        adapter_class("aws")


def test_third_party_adapters_come_from_the_entry_point_group(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "acme_vision.py"
    package.write_text(
        "from service.adapters.local import LocalAdapter\n"
        "class AcmeAdapter(LocalAdapter):\n    name = 'acme'\n"
    )
    dist = tmp_path / "acme_vision-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-vision\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        f"[{registry.ENTRY_POINT_GROUP}]\n"
        "acme = acme_vision:AcmeAdapter\n"
        "azure = acme_vision:AcmeAdapter\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert adapters()["acme"] == "acme_vision:AcmeAdapter"
    assert adapter_class("acme").__name__ == "AcmeAdapter"
    assert adapters()["azure"] == "service.adapters.azure:AzureAdapter"  # built-ins win
    sys.modules.pop("acme_vision", None)


@pytest.mark.anyio
async def test_the_local_adapter_classifies_png_copies(tmp_path: Path) -> None:
    path = tmp_path / "r20.safetensors"
    save_checkpoint(path, cifar_resnet(20).state_dict(), {"architecture": "cifar-resnet20"})
    pixels = np.random.default_rng(0).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    async with httpx.AsyncClient() as client:
        adapter = LocalAdapter(client, LocalAdapterSettings(model=f"cifar-resnet20:{path}"))
        results = await adapter.classify([encode_png(p) for p in pixels])
    assert adapter.configured and len(results) == 3
    assert all(isinstance(r, Answer) and len(r.labels) == 5 for r in results)
    top = results[0].top()  # type: ignore[union-attr]
    assert top.key.isdigit() and abs(sum(label.score for label in results[0].labels) - 1) < 0.5
