"""Checkpoint cards (#22 item 2): every shipped denoiser says how it was trained, and README's
table is the cards' own."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from denoisers.checkpoints import read_metadata

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = {"epochs", "images_seen", "wall_seconds", "machine", "resume"}


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cards", ROOT / "scripts/backfill_cards.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_shipped_denoiser_has_a_card() -> None:
    denoisers = [
        path
        for path in sorted((ROOT / "denoisers/checkpoints").glob("*.safetensors"))
        if read_metadata(path).get("kind") == "denoiser"
    ]
    assert denoisers
    for path in denoisers:
        card = read_metadata(path).get("card")
        assert card is not None, f"{path.name} has no card"
        assert card.keys() >= REQUIRED, (path.name, REQUIRED - card.keys())
        assert card["images_seen"] > 0 and card["epochs"] > 0
        assert path.stem in card["resume"] or "--run-dir" in card["resume"]


def test_readme_shows_the_cards_as_they_are() -> None:
    readme = (ROOT / "README.md").read_text()
    shown = readme.split("<!-- cards:", 1)[1].split("-->", 1)[1].split("<!-- /cards -->")[0]
    assert shown.strip() == _script().table().strip(), (
        "README's card table is stale: `.venv/bin/python scripts/backfill_cards.py --table`"
    )
