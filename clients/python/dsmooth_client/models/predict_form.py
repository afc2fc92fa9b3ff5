from __future__ import annotations

from collections.abc import Mapping
from io import BytesIO
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from .. import types
from ..types import UNSET, File, Unset

T = TypeVar("T", bound="PredictForm")


@_attrs_define
class PredictForm:
    """
    Attributes:
        image (File): the image file (PNG, JPEG, WebP, BMP, GIF)
        alpha (float | Unset): failure probability (at least 1e-12) Default: 0.001.
        budget (int | None | Unset): most classifier queries this request may spend
        classifier (None | str | Unset): catalog name (GET /v1/classifiers)
        denoiser (None | str | Unset): catalog name (GET /v1/denoisers); default: the default denoiser, or its sibling
            trained for the requested sigma where one is served
        label_map (None | str | Unset): vendor label key -> class key, as a JSON object
        max_cost (float | None | Unset): most USD this request may spend on classifier queries
        n (int | Unset): number of noisy samples Default: 10000.
        sigma (float | Unset): noise level in (0, 1] pixel units, on a grid of 1e-4 (0.2500001 is 0.25: sigma in the 7th
            decimal is no fresh chance at a certificate) Default: 0.25.
    """

    image: File
    alpha: float | Unset = 0.001
    budget: int | None | Unset = UNSET
    classifier: None | str | Unset = UNSET
    denoiser: None | str | Unset = UNSET
    label_map: None | str | Unset = UNSET
    max_cost: float | None | Unset = UNSET
    n: int | Unset = 10000
    sigma: float | Unset = 0.25

    def to_dict(self) -> dict[str, Any]:
        image = self.image.to_tuple()

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

        label_map: None | str | Unset
        if isinstance(self.label_map, Unset):
            label_map = UNSET
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

    def to_multipart(self) -> types.RequestFiles:
        files: types.RequestFiles = []

        files.append(("image", self.image.to_tuple()))

        if not isinstance(self.alpha, Unset):
            files.append(("alpha", (None, str(self.alpha).encode(), "text/plain")))

        if not isinstance(self.budget, Unset):
            if isinstance(self.budget, int):
                files.append(("budget", (None, str(self.budget).encode(), "text/plain")))
            else:
                files.append(("budget", (None, str(self.budget).encode(), "text/plain")))

        if not isinstance(self.classifier, Unset):
            if isinstance(self.classifier, str):
                files.append(("classifier", (None, str(self.classifier).encode(), "text/plain")))
            else:
                files.append(("classifier", (None, str(self.classifier).encode(), "text/plain")))

        if not isinstance(self.denoiser, Unset):
            if isinstance(self.denoiser, str):
                files.append(("denoiser", (None, str(self.denoiser).encode(), "text/plain")))
            else:
                files.append(("denoiser", (None, str(self.denoiser).encode(), "text/plain")))

        if not isinstance(self.label_map, Unset):
            if isinstance(self.label_map, str):
                files.append(("label_map", (None, str(self.label_map).encode(), "text/plain")))
            else:
                files.append(("label_map", (None, str(self.label_map).encode(), "text/plain")))

        if not isinstance(self.max_cost, Unset):
            if isinstance(self.max_cost, float):
                files.append(("max_cost", (None, str(self.max_cost).encode(), "text/plain")))
            else:
                files.append(("max_cost", (None, str(self.max_cost).encode(), "text/plain")))

        if not isinstance(self.n, Unset):
            files.append(("n", (None, str(self.n).encode(), "text/plain")))

        if not isinstance(self.sigma, Unset):
            files.append(("sigma", (None, str(self.sigma).encode(), "text/plain")))

        return files

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        image = File(payload=BytesIO(d.pop("image")))

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

        def _parse_label_map(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

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

        predict_form = cls(
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

        return predict_form
