from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

T = TypeVar("T", bound="QueriesAtPA")


@_attrs_define
class QueriesAtPA:
    """Where the plan stops when the candidate's true vote share is ``p_a``.

    Attributes:
        p_a (float): the candidate's probability under the noise
        queries (int): selection + estimation queries on the expected vote path
        stop_reason (None | str): sequential: why the plan stops there (as a certificate's stop_reason); null for the
            fixed plan
        usd (float):
        weight (float): its weight in the prior the expectation averages over
    """

    p_a: float
    queries: int
    stop_reason: None | str
    usd: float
    weight: float

    def to_dict(self) -> dict[str, Any]:
        p_a = self.p_a

        queries = self.queries

        stop_reason: None | str
        stop_reason = self.stop_reason

        usd = self.usd

        weight = self.weight

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "p_a": p_a,
                "queries": queries,
                "stop_reason": stop_reason,
                "usd": usd,
                "weight": weight,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        p_a = d.pop("p_a")

        queries = d.pop("queries")

        def _parse_stop_reason(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        stop_reason = _parse_stop_reason(d.pop("stop_reason"))

        usd = d.pop("usd")

        weight = d.pop("weight")

        queries_at_pa = cls(
            p_a=p_a,
            queries=queries,
            stop_reason=stop_reason,
            usd=usd,
            weight=weight,
        )

        return queries_at_pa
