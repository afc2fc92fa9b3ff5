from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.estimate_model_bound_type_0 import EstimateModelBoundType0
from ..models.estimate_model_method import EstimateModelMethod
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.queries_at_pa import QueriesAtPA


T = TypeVar("T", bound="EstimateModel")


@_attrs_define
class EstimateModel:
    """How the expectation was computed. It is an estimate, not a quote: only the worst case is
    a bound.

        Attributes:
            alpha_per_look (float | None): the level of each look's bound, at the first ledger stream's share of alpha
                (later streams of one image get less)
            bound (EstimateModelBoundType0 | None): the sequential plan's anytime-valid bound; null for the fixed plan
            chunk (int | None): samples per chunk of the sequential plan, its looks falling on whole chunks: with a target,
                look_every (a look every chunk); without one, first_look (looks at doubling counts); fewer where the image is
                too large for that many copies per chunk (from its size when sent, else any image that fits); null for the fixed
                plan
            image_used (bool): whether the image's size went into the plan
            looks (int): looks of the plan (1 for the fixed plan)
            method (EstimateModelMethod): fixed-plan: the expected queries are the worst case; expected-vote-paths: the
                sequential plan run by the certifier's own stopping rule on round(p_A x samples) votes for the candidate at
                every look, averaged over the prior
            prior (list[QueriesAtPA]): the prior over p_A (each with its weight) and the queries at each
            summary (str):
            estimate (bool | Unset):  Default: True.
    """

    alpha_per_look: float | None
    bound: EstimateModelBoundType0 | None
    chunk: int | None
    image_used: bool
    looks: int
    method: EstimateModelMethod
    prior: list[QueriesAtPA]
    summary: str
    estimate: bool | Unset = True

    def to_dict(self) -> dict[str, Any]:
        alpha_per_look: float | None
        alpha_per_look = self.alpha_per_look

        bound: None | str
        if isinstance(self.bound, EstimateModelBoundType0):
            bound = self.bound.value
        else:
            bound = self.bound

        chunk: int | None
        chunk = self.chunk

        image_used = self.image_used

        looks = self.looks

        method = self.method.value

        prior = []
        for prior_item_data in self.prior:
            prior_item = prior_item_data.to_dict()
            prior.append(prior_item)

        summary = self.summary

        estimate = self.estimate

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "alpha_per_look": alpha_per_look,
                "bound": bound,
                "chunk": chunk,
                "image_used": image_used,
                "looks": looks,
                "method": method,
                "prior": prior,
                "summary": summary,
            }
        )
        if estimate is not UNSET:
            field_dict["estimate"] = estimate

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.queries_at_pa import QueriesAtPA  # noqa: PLC0415

        d = dict(src_dict)

        def _parse_alpha_per_look(data: object) -> float | None:
            if data is None:
                return data
            return cast(float | None, data)

        alpha_per_look = _parse_alpha_per_look(d.pop("alpha_per_look"))

        def _parse_bound(data: object) -> EstimateModelBoundType0 | None:
            if data is None:
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                bound_type_0 = EstimateModelBoundType0(data)

                return bound_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(EstimateModelBoundType0 | None, data)

        bound = _parse_bound(d.pop("bound"))

        def _parse_chunk(data: object) -> int | None:
            if data is None:
                return data
            return cast(int | None, data)

        chunk = _parse_chunk(d.pop("chunk"))

        image_used = d.pop("image_used")

        looks = d.pop("looks")

        method = EstimateModelMethod(d.pop("method"))

        prior = []
        _prior = d.pop("prior")
        for prior_item_data in _prior:
            prior_item = QueriesAtPA.from_dict(prior_item_data)

            prior.append(prior_item)

        summary = d.pop("summary")

        estimate = d.pop("estimate", UNSET)

        estimate_model = cls(
            alpha_per_look=alpha_per_look,
            bound=bound,
            chunk=chunk,
            image_used=image_used,
            looks=looks,
            method=method,
            prior=prior,
            summary=summary,
            estimate=estimate,
        )

        return estimate_model
