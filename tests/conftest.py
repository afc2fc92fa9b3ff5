"""Fixtures shared by the suite: the read-only data in ../shared, and small real models."""

from __future__ import annotations

import contextlib
import importlib
import os
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic_settings import BaseSettings

from service.config import shared_dir

ROOT = Path(__file__).resolve().parents[1]
SHARED = shared_dir()
RESNET56 = SHARED / "models/third-party/cifar10-resnet/resnet56-4bfd9763.th"
LOSSLESS = SHARED / "data/cifar10/test-lossless-1000.npz"
# The only DSMOOTH_* variables the suite honours: where the data are, not how the service runs.
KEPT_VARIABLES = frozenset({"DSMOOTH_SHARED_DIR", "DSMOOTH_CACHE_DIR"})


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: the read-only ../shared data is not on this machine")
    return path


@pytest.fixture(scope="session")
def resnet56_path() -> Path:
    return _need(RESNET56)


@pytest.fixture(scope="session")
def cifar_test() -> tuple[torch.Tensor, torch.Tensor]:
    """The first 1000 CIFAR-10 test images, pixel-exact: [N, 3, 32, 32] in [0, 1], labels."""
    data = np.load(_need(LOSSLESS))
    images = torch.from_numpy(data["x"]).permute(0, 3, 1, 2).float().div(255)
    return images, torch.from_numpy(data["y"])


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@cache
def _import_settings_modules() -> None:
    """Import the modules of ``service`` that define settings: the config, the built-in adapters."""
    importlib.import_module("service.config")
    from service.adapters.registry import adapters

    for target in adapters().values():
        module = target.partition(":")[0]
        if module.startswith("service."):
            # An adapter whose optional dependency is missing: its settings are never read.
            with contextlib.suppress(ImportError):
                importlib.import_module(module)


def _service_settings_classes() -> list[type[BaseSettings]]:
    _import_settings_modules()
    found: list[type[BaseSettings]] = []
    todo = list(BaseSettings.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.partition(".")[0] == "service" and cls not in found:
            found.append(cls)
    return found


def _isolate(monkeypatch: pytest.MonkeyPatch) -> None:
    """No DSMOOTH_* variable but the data locations, and no settings class reads a ``.env``."""
    for name in list(os.environ):
        # pydantic-settings matches names case-insensitively: dsmooth_secret counts too.
        if name.upper().startswith("DSMOOTH_") and name not in KEPT_VARIABLES:
            monkeypatch.delenv(name)
    for cls in _service_settings_classes():
        monkeypatch.setitem(cls.model_config, "env_file", None)


_session_patch = pytest.MonkeyPatch()


def pytest_configure(config: pytest.Config) -> None:
    # Also for what runs before the first test: module-level Settings(...) at collection, and
    # module- or session-scoped fixtures (the live servers), which start before autouse ones.
    _isolate(_session_patch)


def pytest_unconfigure(config: pytest.Config) -> None:
    _session_patch.undo()


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from the same environment whatever the developer's shell or ``.env``."""
    _isolate(monkeypatch)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # test_api's `transport` fixture runs each test over ASGI and over a real uvicorn server:
    # only the uvicorn copies start a server.
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("transport") == "uvicorn":
            item.add_marker(pytest.mark.subprocess)
            item.add_marker(pytest.mark.slow)
