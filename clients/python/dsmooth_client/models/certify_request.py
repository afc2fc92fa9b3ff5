from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.certify_request_candidate import CertifyRequestCandidate
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.certify_request_label_map_type_0 import CertifyRequestLabelMapType0


T = TypeVar("T", bound="CertifyRequest")


@_attrs_define
class CertifyRequest:
    """
    Attributes:
        image (str): the image (PNG, JPEG, WebP, BMP, GIF), base64-encoded; a data: URL works too
        alpha (float | Unset): failure probability Default: 0.001.
        budget (int | None | Unset): most classifier queries this request may spend
        candidate (CertifyRequestCandidate | Unset): 'noisy': candidate = top class of n0 noisy samples; 'clean': the
            classifier's label on the clean image (one query) Default: CertifyRequestCandidate.NOISY.
        classifier (None | str | Unset): catalog name (GET /v1/classifiers)
        denoiser (None | str | Unset): catalog name (GET /v1/denoisers)
        label_map (CertifyRequestLabelMapType0 | None | Unset): vendor label key -> class key (synonyms into one class),
            fixed before sampling; a JSON object (a JSON string in multipart forms)
        n (int | Unset): number of noisy samples Default: 10000.
        n0 (int | Unset): selection samples (0 with 'clean') Default: 100.
        sigma (float | Unset): noise level in [0, 1] pixel units Default: 0.25.
    """

    image: str
    alpha: float | Unset = 0.001
    budget: int | None | Unset = UNSET
    candidate: CertifyRequestCandidate | Unset = CertifyRequestCandidate.NOISY
    classifier: None | str | Unset = UNSET
    denoiser: None | str | Unset = UNSET
    label_map: CertifyRequestLabelMapType0 | None | Unset = UNSET
    n: int | Unset = 10000
    n0: int | Unset = 100
    sigma: float | Unset = 0.25

    def to_dict(self) -> dict[str, Any]:
        from ..models.certify_request_label_map_type_0 import CertifyRequestLabelMapType0  # noqa: PLC0415

        image = self.image

        alpha = self.alpha

        budget: int | None | Unset
        if isinstance(self.budget, Unset):
            budget = UNSET
        else:
            budget = self.budget

        candidate: str | Unset = UNSET
        if not isinstance(self.candidate, Unset):
            candidate = self.candidate.value

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
        elif isinstance(self.label_map, CertifyRequestLabelMapType0):
            label_map = self.label_map.to_dict()
        else:
            label_map = self.label_map

        n = self.n

        n0 = self.n0

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
        if candidate is not UNSET:
            field_dict["candidate"] = candidate
        if classifier is not UNSET:
            field_dict["classifier"] = classifier
        if denoiser is not UNSET:
            field_dict["denoiser"] = denoiser
        if label_map is not UNSET:
            field_dict["label_map"] = label_map
        if n is not UNSET:
            field_dict["n"] = n
        if n0 is not UNSET:
            field_dict["n0"] = n0
        if sigma is not UNSET:
            field_dict["sigma"] = sigma

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.certify_request_label_map_type_0 import CertifyRequestLabelMapType0  # noqa: PLC0415

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

        _candidate = d.pop("candidate", UNSET)
        candidate: CertifyRequestCandidate | Unset
        if isinstance(_candidate, Unset):
            candidate = UNSET
        else:
            candidate = CertifyRequestCandidate(_candidate)

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

        def _parse_label_map(data: object) -> CertifyRequestLabelMapType0 | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                label_map_type_0 = CertifyRequestLabelMapType0.from_dict(data)

                return label_map_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(CertifyRequestLabelMapType0 | None | Unset, data)

        label_map = _parse_label_map(d.pop("label_map", UNSET))

        n = d.pop("n", UNSET)

        n0 = d.pop("n0", UNSET)

        sigma = d.pop("sigma", UNSET)

        certify_request = cls(
            image=image,
            alpha=alpha,
            budget=budget,
            candidate=candidate,
            classifier=classifier,
            denoiser=denoiser,
            label_map=label_map,
            n=n,
            n0=n0,
            sigma=sigma,
        )

        return certify_request
