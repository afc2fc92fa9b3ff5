from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.label_count import LabelCount
    from ..models.model_ref import ModelRef
    from ..models.prediction_label_map_type_0 import PredictionLabelMapType0
    from ..models.queries import Queries
    from ..models.timings import Timings


T = TypeVar("T", bound="Prediction")


@_attrs_define
class Prediction:
    """
    Attributes:
        abstained (bool):
        alpha (float):
        classifier (ModelRef):
        denoiser (ModelRef):
        device (str):
        image_digest (str): SHA-256 of the certified float32 pixels
        label (None | str): the certified (or predicted) class; null if abstained
        label_key (None | str): stable key of the class (index for local models)
        n (int):
        p_value (float): two-sided binomial test of the top two counts
        precision (str):
        queries (Queries):
        request_id (str):
        sigma (float):
        timings (Timings):
        top_counts (list[LabelCount]): most frequent labels of the counted samples
        cost (float | Unset): estimated cost of the queries, in USD Default: 0.0.
        label_map (None | PredictionLabelMapType0 | Unset): the request's label_map (vendor label key -> class key),
            applied to every answer before counting: part of the classifier certified; null when none
        warnings (list[str] | Unset): why the result may mean less than it seems, though it is valid: the image far from
            what the classifier was made for (size, shape), a denoiser trained for another sigma; empty when none
    """

    abstained: bool
    alpha: float
    classifier: ModelRef
    denoiser: ModelRef
    device: str
    image_digest: str
    label: None | str
    label_key: None | str
    n: int
    p_value: float
    precision: str
    queries: Queries
    request_id: str
    sigma: float
    timings: Timings
    top_counts: list[LabelCount]
    cost: float | Unset = 0.0
    label_map: None | PredictionLabelMapType0 | Unset = UNSET
    warnings: list[str] | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.prediction_label_map_type_0 import PredictionLabelMapType0  # noqa: PLC0415

        abstained = self.abstained

        alpha = self.alpha

        classifier = self.classifier.to_dict()

        denoiser = self.denoiser.to_dict()

        device = self.device

        image_digest = self.image_digest

        label: None | str
        label = self.label

        label_key: None | str
        label_key = self.label_key

        n = self.n

        p_value = self.p_value

        precision = self.precision

        queries = self.queries.to_dict()

        request_id = self.request_id

        sigma = self.sigma

        timings = self.timings.to_dict()

        top_counts = []
        for top_counts_item_data in self.top_counts:
            top_counts_item = top_counts_item_data.to_dict()
            top_counts.append(top_counts_item)

        cost = self.cost

        label_map: dict[str, Any] | None | Unset
        if isinstance(self.label_map, Unset):
            label_map = UNSET
        elif isinstance(self.label_map, PredictionLabelMapType0):
            label_map = self.label_map.to_dict()
        else:
            label_map = self.label_map

        warnings: list[str] | Unset = UNSET
        if not isinstance(self.warnings, Unset):
            warnings = self.warnings

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "abstained": abstained,
                "alpha": alpha,
                "classifier": classifier,
                "denoiser": denoiser,
                "device": device,
                "image_digest": image_digest,
                "label": label,
                "label_key": label_key,
                "n": n,
                "p_value": p_value,
                "precision": precision,
                "queries": queries,
                "request_id": request_id,
                "sigma": sigma,
                "timings": timings,
                "top_counts": top_counts,
            }
        )
        if cost is not UNSET:
            field_dict["cost"] = cost
        if label_map is not UNSET:
            field_dict["label_map"] = label_map
        if warnings is not UNSET:
            field_dict["warnings"] = warnings

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.label_count import LabelCount  # noqa: PLC0415
        from ..models.model_ref import ModelRef  # noqa: PLC0415
        from ..models.prediction_label_map_type_0 import PredictionLabelMapType0  # noqa: PLC0415
        from ..models.queries import Queries  # noqa: PLC0415
        from ..models.timings import Timings  # noqa: PLC0415

        d = dict(src_dict)
        abstained = d.pop("abstained")

        alpha = d.pop("alpha")

        classifier = ModelRef.from_dict(d.pop("classifier"))

        denoiser = ModelRef.from_dict(d.pop("denoiser"))

        device = d.pop("device")

        image_digest = d.pop("image_digest")

        def _parse_label(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        label = _parse_label(d.pop("label"))

        def _parse_label_key(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        label_key = _parse_label_key(d.pop("label_key"))

        n = d.pop("n")

        p_value = d.pop("p_value")

        precision = d.pop("precision")

        queries = Queries.from_dict(d.pop("queries"))

        request_id = d.pop("request_id")

        sigma = d.pop("sigma")

        timings = Timings.from_dict(d.pop("timings"))

        top_counts = []
        _top_counts = d.pop("top_counts")
        for top_counts_item_data in _top_counts:
            top_counts_item = LabelCount.from_dict(top_counts_item_data)

            top_counts.append(top_counts_item)

        cost = d.pop("cost", UNSET)

        def _parse_label_map(data: object) -> None | PredictionLabelMapType0 | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                label_map_type_0 = PredictionLabelMapType0.from_dict(data)

                return label_map_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | PredictionLabelMapType0 | Unset, data)

        label_map = _parse_label_map(d.pop("label_map", UNSET))

        warnings = cast(list[str], d.pop("warnings", UNSET))

        prediction = cls(
            abstained=abstained,
            alpha=alpha,
            classifier=classifier,
            denoiser=denoiser,
            device=device,
            image_digest=image_digest,
            label=label,
            label_key=label_key,
            n=n,
            p_value=p_value,
            precision=precision,
            queries=queries,
            request_id=request_id,
            sigma=sigma,
            timings=timings,
            top_counts=top_counts,
            cost=cost,
            label_map=label_map,
            warnings=warnings,
        )

        return prediction
