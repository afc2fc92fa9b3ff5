from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.predict_request_label_map_type_0 import PredictRequestLabelMapType0


T = TypeVar("T", bound="PredictRequest")


@_attrs_define
class PredictRequest:
    """
    Attributes:
        image (str): the image (PNG, JPEG, WebP, BMP, GIF), base64-encoded; a data: URL works too
        alpha (float | Unset): failure probability (at least 1e-12) Default: 0.001.
        budget (int | None | Unset): most classifier queries this request may spend
        classifier (None | str | Unset): catalog name (GET /v1/classifiers)
        denoiser (None | str | Unset): catalog name (GET /v1/denoisers); default: the default denoiser, or its sibling
            trained for the requested sigma where one is served
        label_map (None | PredictRequestLabelMapType0 | Unset): vendor label key -> class key (synonyms into one class),
            fixed before sampling; a JSON object (a JSON string in multipart forms) of at most 1,000 entries. It is part of
            the classifier certified, and the certificate names it
        max_cost (float | None | Unset): most USD this request may spend on classifier queries
        n (int | Unset): number of noisy samples Default: 10000.
        sigma (float | Unset): noise level in (0, 1] pixel units, on a grid of 1e-4 (0.2500001 is 0.25: sigma in the 7th
            decimal is no fresh chance at a certificate) Default: 0.25.
    """

    image: str
    alpha: float | Unset = 0.001
    budget: int | None | Unset = UNSET
    classifier: None | str | Unset = UNSET
    denoiser: None | str | Unset = UNSET
    label_map: None | PredictRequestLabelMapType0 | Unset = UNSET
    max_cost: float | None | Unset = UNSET
    n: int | Unset = 10000
    sigma: float | Unset = 0.25

    def to_dict(self) -> dict[str, Any]:
        from ..models.predict_request_label_map_type_0 import PredictRequestLabelMapType0  # noqa: PLC0415

        image = self.image

        alpha = self.alpha

        budget: int | None | Unset
        if isinstance(self.budget, Unset):
            budget = UNSET
        else:
            budget = self.budget

        classifier: None | str | Unset
        if isinstance(self.classifier, Unset):
            classifier = UNSET
        else:
            classifier = self.classifier

        denoiser: None | str | Unset
        if isinstance(self.denoiser, Unset):
            denoiser = UNSET
        else:
            denoiser = self.denoiser

        label_map: dict[str, Any] | None | Unset
        if isinstance(self.label_map, Unset):
            label_map = UNSET
        elif isinstance(self.label_map, PredictRequestLabelMapType0):
            label_map = self.label_map.to_dict()
        else:
            label_map = self.label_map

        max_cost: float | None | Unset
        if isinstance(self.max_cost, Unset):
            max_cost = UNSET
        else:
            max_cost = self.max_cost

        n = self.n

        sigma = self.sigma

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "image": image,
            }
        )
        if alpha is not UNSET:
            field_dict["alpha"] = alpha
        if budget is not UNSET:
            field_dict["budget"] = budget
        if classifier is not UNSET:
            field_dict["classifier"] = classifier
        if denoiser is not UNSET:
            field_dict["denoiser"] = denoiser
        if label_map is not UNSET:
            field_dict["label_map"] = label_map
        if max_cost is not UNSET:
            field_dict["max_cost"] = max_cost
        if n is not UNSET:
            field_dict["n"] = n
        if sigma is not UNSET:
            field_dict["sigma"] = sigma

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.predict_request_label_map_type_0 import PredictRequestLabelMapType0  # noqa: PLC0415

        d = dict(src_dict)
        image = d.pop("image")

        alpha = d.pop("alpha", UNSET)

        def _parse_budget(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        budget = _parse_budget(d.pop("budget", UNSET))

        def _parse_classifier(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        classifier = _parse_classifier(d.pop("classifier", UNSET))

        def _parse_denoiser(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        denoiser = _parse_denoiser(d.pop("denoiser", UNSET))

        def _parse_label_map(data: object) -> None | PredictRequestLabelMapType0 | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                label_map_type_0 = PredictRequestLabelMapType0.from_dict(data)

                return label_map_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | PredictRequestLabelMapType0 | Unset, data)

        label_map = _parse_label_map(d.pop("label_map", UNSET))

        def _parse_max_cost(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        max_cost = _parse_max_cost(d.pop("max_cost", UNSET))

        n = d.pop("n", UNSET)

        sigma = d.pop("sigma", UNSET)

        predict_request = cls(
            image=image,
            alpha=alpha,
            budget=budget,
            classifier=classifier,
            denoiser=denoiser,
            label_map=label_map,
            max_cost=max_cost,
            n=n,
            sigma=sigma,
        )

        return predict_request
