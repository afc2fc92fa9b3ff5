from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="Savings")


@_attrs_define
class Savings:
    """
    Attributes:
        cost_saved (float): USD
        fixed_n_queries (int): queries of the fixed-n plan (n0 = 100, n = max)
        queries_saved (int):
    """

    cost_saved: float
    fixed_n_queries: int
    queries_saved: int

    def to_dict(self) -> dict[str, Any]:
        cost_saved = self.cost_saved

        fixed_n_queries = self.fixed_n_queries

        queries_saved = self.queries_saved

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "cost_saved": cost_saved,
                "fixed_n_queries": fixed_n_queries,
                "queries_saved": queries_saved,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        cost_saved = d.pop("cost_saved")

        fixed_n_queries = d.pop("fixed_n_queries")

        queries_saved = d.pop("queries_saved")

        savings = cls(
            cost_saved=cost_saved,
            fixed_n_queries=fixed_n_queries,
            queries_saved=queries_saved,
        )

        return savings
