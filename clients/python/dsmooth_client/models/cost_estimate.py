from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

from ..models.cost_estimate_candidate import CostEstimateCandidate
from ..models.cost_estimate_mode import CostEstimateMode

if TYPE_CHECKING:
    from ..models.estimate_model import EstimateModel
    from ..models.model_ref import ModelRef


T = TypeVar("T", bound="CostEstimate")


@_attrs_define
class CostEstimate:
    """What a certification would cost before anything runs: the worst case (what budgets,
    max_cost and the key's limits are checked against) and the expectation. Free: the estimate
    itself sends no query and books nothing.

        Attributes:
            candidate (CostEstimateCandidate): the candidate source, default resolved
            classifier (ModelRef):
            expected_queries (float): the prior-weighted mean over model.prior
            expected_usd (float): expected_queries x price_per_query
            mode (CostEstimateMode):
            model (EstimateModel): How the expectation was computed. It is an estimate, not a quote: only the worst case is
                a bound.
            price_per_query (float): USD per query (GET /v1/classifiers)
            worst_case_queries (int): n0 + n, or 1 + n with candidate='clean'
            worst_case_usd (float): worst_case_queries x price_per_query
    """

    candidate: CostEstimateCandidate
    classifier: ModelRef
    expected_queries: float
    expected_usd: float
    mode: CostEstimateMode
    model: EstimateModel
    price_per_query: float
    worst_case_queries: int
    worst_case_usd: float

    def to_dict(self) -> dict[str, Any]:
        candidate = self.candidate.value

        classifier = self.classifier.to_dict()

        expected_queries = self.expected_queries

        expected_usd = self.expected_usd

        mode = self.mode.value

        model = self.model.to_dict()

        price_per_query = self.price_per_query

        worst_case_queries = self.worst_case_queries

        worst_case_usd = self.worst_case_usd

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "candidate": candidate,
                "classifier": classifier,
                "expected_queries": expected_queries,
                "expected_usd": expected_usd,
                "mode": mode,
                "model": model,
                "price_per_query": price_per_query,
                "worst_case_queries": worst_case_queries,
                "worst_case_usd": worst_case_usd,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.estimate_model import EstimateModel  # noqa: PLC0415
        from ..models.model_ref import ModelRef  # noqa: PLC0415

        d = dict(src_dict)
        candidate = CostEstimateCandidate(d.pop("candidate"))

        classifier = ModelRef.from_dict(d.pop("classifier"))

        expected_queries = d.pop("expected_queries")

        expected_usd = d.pop("expected_usd")

        mode = CostEstimateMode(d.pop("mode"))

        model = EstimateModel.from_dict(d.pop("model"))

        price_per_query = d.pop("price_per_query")

        worst_case_queries = d.pop("worst_case_queries")

        worst_case_usd = d.pop("worst_case_usd")

        cost_estimate = cls(
            candidate=candidate,
            classifier=classifier,
            expected_queries=expected_queries,
            expected_usd=expected_usd,
            mode=mode,
            model=model,
            price_per_query=price_per_query,
            worst_case_queries=worst_case_queries,
            worst_case_usd=worst_case_usd,
        )

        return cost_estimate
