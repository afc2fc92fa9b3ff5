from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.certify_request_candidate_type_0 import CertifyRequestCandidateType0
from ..models.certify_request_mode import CertifyRequestMode
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.certify_request_label_map_type_0 import CertifyRequestLabelMapType0


T = TypeVar("T", bound="CertifyRequest")


@_attrs_define
class CertifyRequest:
    """
    Attributes:
        image (str): the image (PNG, JPEG, WebP, BMP, GIF), base64-encoded; a data: URL works too
        alpha (float | Unset): failure probability (at least 1e-12) Default: 0.001.
        budget (int | None | Unset): most classifier queries this request may spend
        candidate (CertifyRequestCandidateType0 | None | Unset): 'noisy': top class of n0 noisy samples; 'clean': the
            classifier's label on the clean image (one query). Default: clean for paid classifiers, noisy otherwise
        classifier (None | str | Unset): catalog name (GET /v1/classifiers)
        denoiser (None | str | Unset): catalog name (GET /v1/denoisers); default: the default denoiser, or its sibling
            trained for the requested sigma where one is served
        first_look (int | None | Unset): sequential: samples at look 1 (default: 32 without a target; with one, the
            fewest with which a unanimous stream could certify it)
        futility (float | Unset): sequential with a target: stop (target_unlikely) once the predictive chance that the
            budget certifies the target falls below this; 0 never gives up early. Decides when to stop, never what is
            certified Default: 0.01.
        label_map (CertifyRequestLabelMapType0 | None | Unset): vendor label key -> class key (synonyms into one class),
            fixed before sampling; a JSON object (a JSON string in multipart forms) of at most 1,000 entries. It is part of
            the classifier certified, and the certificate names it
        look_every (int | None | Unset): sequential with a target: samples between looks (the betting bound holds at
            every look, so looking often only saves queries). Default: 8 where queries are paid, 32 for local models (fewer,
            larger batches run faster); raised to n / 2,000 where n is larger (at most 2,000 looks)
        max_cost (float | None | Unset): most USD this request may spend on classifier queries
        mode (CertifyRequestMode | Unset): 'fixed': n samples, one bound; 'sequential': sample in rounds (up to n) with
            anytime-valid bounds and stop as soon as the answer is known — with a target_radius a betting confidence
            sequence checked every look_every samples, without one Clopper-Pearson with alpha spread over looks at 2^k x
            first_look samples Default: CertifyRequestMode.FIXED.
        n (int | Unset): number of noisy samples Default: 10000.
        n0 (int | Unset): selection samples (0 with 'clean') Default: 100.
        sigma (float | Unset): noise level in (0, 1] pixel units, on a grid of 1e-4 (0.2500001 is 0.25: sigma in the 7th
            decimal is no fresh chance at a certificate) Default: 0.25.
        target_radius (float | None | Unset): sequential: stop once this radius is certified or unreachable
        tolerance (float | Unset): sequential without a target: stop when more samples could raise the radius by less
            than this Default: 0.02.
    """

    image: str
    alpha: float | Unset = 0.001
    budget: int | None | Unset = UNSET
    candidate: CertifyRequestCandidateType0 | None | Unset = UNSET
    classifier: None | str | Unset = UNSET
    denoiser: None | str | Unset = UNSET
    first_look: int | None | Unset = UNSET
    futility: float | Unset = 0.01
    label_map: CertifyRequestLabelMapType0 | None | Unset = UNSET
    look_every: int | None | Unset = UNSET
    max_cost: float | None | Unset = UNSET
    mode: CertifyRequestMode | Unset = CertifyRequestMode.FIXED
    n: int | Unset = 10000
    n0: int | Unset = 100
    sigma: float | Unset = 0.25
    target_radius: float | None | Unset = UNSET
    tolerance: float | Unset = 0.02

    def to_dict(self) -> dict[str, Any]:
        from ..models.certify_request_label_map_type_0 import CertifyRequestLabelMapType0  # noqa: PLC0415

        image = self.image

        alpha = self.alpha

        budget: int | None | Unset
        if isinstance(self.budget, Unset):
            budget = UNSET
        else:
            budget = self.budget

        candidate: None | str | Unset
        if isinstance(self.candidate, Unset):
            candidate = UNSET
        elif isinstance(self.candidate, CertifyRequestCandidateType0):
            candidate = self.candidate.value
        else:
            candidate = self.candidate

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

        first_look: int | None | Unset
        if isinstance(self.first_look, Unset):
            first_look = UNSET
        else:
            first_look = self.first_look

        futility = self.futility

        label_map: dict[str, Any] | None | Unset
        if isinstance(self.label_map, Unset):
            label_map = UNSET
        elif isinstance(self.label_map, CertifyRequestLabelMapType0):
            label_map = self.label_map.to_dict()
        else:
            label_map = self.label_map

        look_every: int | None | Unset
        if isinstance(self.look_every, Unset):
            look_every = UNSET
        else:
            look_every = self.look_every

        max_cost: float | None | Unset
        if isinstance(self.max_cost, Unset):
            max_cost = UNSET
        else:
            max_cost = self.max_cost

        mode: str | Unset = UNSET
        if not isinstance(self.mode, Unset):
            mode = self.mode.value

        n = self.n

        n0 = self.n0

        sigma = self.sigma

        target_radius: float | None | Unset
        if isinstance(self.target_radius, Unset):
            target_radius = UNSET
        else:
            target_radius = self.target_radius

        tolerance = self.tolerance

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
        if first_look is not UNSET:
            field_dict["first_look"] = first_look
        if futility is not UNSET:
            field_dict["futility"] = futility
        if label_map is not UNSET:
            field_dict["label_map"] = label_map
        if look_every is not UNSET:
            field_dict["look_every"] = look_every
        if max_cost is not UNSET:
            field_dict["max_cost"] = max_cost
        if mode is not UNSET:
            field_dict["mode"] = mode
        if n is not UNSET:
            field_dict["n"] = n
        if n0 is not UNSET:
            field_dict["n0"] = n0
        if sigma is not UNSET:
            field_dict["sigma"] = sigma
        if target_radius is not UNSET:
            field_dict["target_radius"] = target_radius
        if tolerance is not UNSET:
            field_dict["tolerance"] = tolerance

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

        def _parse_candidate(data: object) -> CertifyRequestCandidateType0 | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                candidate_type_0 = CertifyRequestCandidateType0(data)

                return candidate_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(CertifyRequestCandidateType0 | None | Unset, data)

        candidate = _parse_candidate(d.pop("candidate", UNSET))

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

        def _parse_first_look(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        first_look = _parse_first_look(d.pop("first_look", UNSET))

        futility = d.pop("futility", UNSET)

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

        def _parse_look_every(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        look_every = _parse_look_every(d.pop("look_every", UNSET))

        def _parse_max_cost(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        max_cost = _parse_max_cost(d.pop("max_cost", UNSET))

        _mode = d.pop("mode", UNSET)
        mode: CertifyRequestMode | Unset
        if isinstance(_mode, Unset):
            mode = UNSET
        else:
            mode = CertifyRequestMode(_mode)

        n = d.pop("n", UNSET)

        n0 = d.pop("n0", UNSET)

        sigma = d.pop("sigma", UNSET)

        def _parse_target_radius(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        target_radius = _parse_target_radius(d.pop("target_radius", UNSET))

        tolerance = d.pop("tolerance", UNSET)

        certify_request = cls(
            image=image,
            alpha=alpha,
            budget=budget,
            candidate=candidate,
            classifier=classifier,
            denoiser=denoiser,
            first_look=first_look,
            futility=futility,
            label_map=label_map,
            look_every=look_every,
            max_cost=max_cost,
            mode=mode,
            n=n,
            n0=n0,
            sigma=sigma,
            target_radius=target_radius,
            tolerance=tolerance,
        )

        return certify_request
