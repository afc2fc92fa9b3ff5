"""The certificate ledger: one guarantee per (image, base classifier), whatever a client sends.

Every certificate is computed from a *stream*: the noise plan and bound that the request's
parameters select (sigma, mode, candidate source, n0, and — where the bound is valid only for
one sample size or look schedule — n and the first look). Re-reading one stream is free: its
bounds are nested in alpha and, for the betting confidence sequence, valid at every look, so no
choice of n, target or stopping time on it can fish (rule 5). A *new* stream is a fresh chance
to be wrong, so the ledger numbers the streams of each key in the order they are first used and
the j-th gets only a share of alpha:

    alpha_j = alpha * 6 / (pi^2 j^2)        (sum over j of 6 / (pi^2 j^2) = 1)

so the chance that *any* certificate ever issued for the key is wrong is at most alpha, by the
union bound over streams (rule 9). The ledger must outlive the vote store: a lost ledger restarts
the numbering and voids the guarantee.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "InMemoryLedger",
    "Ledger",
    "LedgerEntry",
    "alpha_share",
    "label_map_digest",
    "ledger_key",
    "stream_id",
]


def alpha_share(position: int) -> float:
    """The share of alpha of the ``position``-th stream (1-based) of a key."""
    if position < 1:
        raise ValueError(f"ledger positions start at 1 (got {position})")
    return 6.0 / (math.pi**2 * position**2)


def label_map_digest(label_map: Mapping[str, str]) -> str:
    """Names a request's label map (synonyms merged into one class) in seeds and stream ids."""
    return hashlib.sha256(json.dumps(dict(label_map), sort_keys=True).encode()).hexdigest()[:16]


def ledger_key(digest: str, base_classifier: dict[str, object]) -> str:
    """The key of one (image, base classifier): the digest and what names the classifier,
    before any label map. A map only merges the classifier's answers, so every map of one
    classifier shares its ledger (each a stream of its own): a client cannot open a fresh ledger
    with a map that changes nothing (``{"x": "x"}``)."""
    if "label_map" in base_classifier:
        base_classifier = {**base_classifier, "label_map": label_map_digest({})}
    canonical = json.dumps(base_classifier, sort_keys=True, separators=(",", ":"), default=str)
    return f"dsmooth:ledger:{{{digest}}}:{hashlib.sha256(canonical.encode()).hexdigest()[:32]}"


def stream_id(parts: dict[str, object]) -> str:
    """A stream's name within its key: what selects its noise plan and its bound."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    position: int  # the stream's number within the key, from 1
    issued_before: int  # certificates the service issued for the key before this one

    @property
    def share(self) -> float:
        return alpha_share(self.position)


class Ledger(Protocol):
    async def admit(self, key: str, stream: str) -> LedgerEntry:
        """The stream's position (numbered now if new) and the key's count of issued
        certificates before this one (counted now)."""
        ...


class InMemoryLedger:
    """The ledger of one process (the embedded default); Redis holds it across replicas."""

    def __init__(self) -> None:
        self._streams: dict[str, dict[str, int]] = {}
        self._issued: dict[str, int] = {}

    async def admit(self, key: str, stream: str) -> LedgerEntry:
        streams = self._streams.setdefault(key, {})
        position = streams.setdefault(stream, len(streams) + 1)
        issued = self._issued.get(key, 0)
        self._issued[key] = issued + 1
        return LedgerEntry(position, issued)
