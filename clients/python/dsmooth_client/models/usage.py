from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

T = TypeVar("T", bound="Usage")


@_attrs_define
class Usage:
    """The calling key's counts now (UTC) and its limits.

    Attributes:
        daily_queries (int | None): the key's daily query budget; null: none
        day (str): today, UTC (YYYY-MM-DD)
        key (str): the key's name
        month (str): this month, UTC (YYYY-MM)
        monthly_usd (float | None): the key's monthly spend limit; null: none
        queries_left_today (int | None):
        queries_today (int): queries booked today (in-flight requests at their worst case until they settle)
        spent_usd_this_month (float): USD booked this month (in-flight requests at their worst case until they settle)
        usd_left_this_month (float | None):
    """

    daily_queries: int | None
    day: str
    key: str
    month: str
    monthly_usd: float | None
    queries_left_today: int | None
    queries_today: int
    spent_usd_this_month: float
    usd_left_this_month: float | None

    def to_dict(self) -> dict[str, Any]:
        daily_queries: int | None
        daily_queries = self.daily_queries

        day = self.day

        key = self.key

        month = self.month

        monthly_usd: float | None
        monthly_usd = self.monthly_usd

        queries_left_today: int | None
        queries_left_today = self.queries_left_today

        queries_today = self.queries_today

        spent_usd_this_month = self.spent_usd_this_month

        usd_left_this_month: float | None
        usd_left_this_month = self.usd_left_this_month

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "daily_queries": daily_queries,
                "day": day,
                "key": key,
                "month": month,
                "monthly_usd": monthly_usd,
                "queries_left_today": queries_left_today,
                "queries_today": queries_today,
                "spent_usd_this_month": spent_usd_this_month,
                "usd_left_this_month": usd_left_this_month,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)

        def _parse_daily_queries(data: object) -> int | None:
            if data is None:
                return data
            return cast(int | None, data)

        daily_queries = _parse_daily_queries(d.pop("daily_queries"))

        day = d.pop("day")

        key = d.pop("key")

        month = d.pop("month")

        def _parse_monthly_usd(data: object) -> float | None:
            if data is None:
                return data
            return cast(float | None, data)

        monthly_usd = _parse_monthly_usd(d.pop("monthly_usd"))

        def _parse_queries_left_today(data: object) -> int | None:
            if data is None:
                return data
            return cast(int | None, data)

        queries_left_today = _parse_queries_left_today(d.pop("queries_left_today"))

        queries_today = d.pop("queries_today")

        spent_usd_this_month = d.pop("spent_usd_this_month")

        def _parse_usd_left_this_month(data: object) -> float | None:
            if data is None:
                return data
            return cast(float | None, data)

        usd_left_this_month = _parse_usd_left_this_month(d.pop("usd_left_this_month"))

        usage = cls(
            daily_queries=daily_queries,
            day=day,
            key=key,
            month=month,
            monthly_usd=monthly_usd,
            queries_left_today=queries_left_today,
            queries_today=queries_today,
            spent_usd_this_month=spent_usd_this_month,
            usd_left_this_month=usd_left_this_month,
        )

        return usage
