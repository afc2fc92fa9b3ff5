from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.certificate_candidate_source import CertificateCandidateSource
from ..models.certificate_mode import CertificateMode
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.bound import Bound
    from ..models.certificate_label_map_type_0 import CertificateLabelMapType0
    from ..models.label_count import LabelCount
    from ..models.ledger_position import LedgerPosition
    from ..models.model_ref import ModelRef
    from ..models.queries import Queries
    from ..models.savings import Savings
    from ..models.signature import Signature
    from ..models.timings import Timings


T = TypeVar("T", bound="Certificate")


@_attrs_define
class Certificate:
    """
    Attributes:
        abstained (bool):
        alpha (float):
        candidate (None | str): the class tested, also when abstaining
        candidate_source (CertificateCandidateSource):
        classifier (ModelRef):
        denoiser (ModelRef):
        device (str):
        image_digest (str): SHA-256 of the certified float32 pixels
        label (None | str): the certified (or predicted) class; null if abstained
        label_key (None | str): stable key of the class (index for local models)
        n (int):
        n0 (int):
        p_lower (float): (1 - alpha) lower confidence bound on p_A
        precision (str):
        queries (Queries):
        radius (float): certified L2 radius in [0, 1] pixel units (0 if abstained)
        request_id (str):
        sigma (float):
        timings (Timings):
        top_counts (list[LabelCount]): most frequent labels of the counted samples
        bound (Bound | None | Unset):
        cost (float | Unset): estimated cost of the queries, in USD Default: 0.0.
        issued_at (None | str | Unset): when the service signed it (RFC 3339, UTC)
        label_map (CertificateLabelMapType0 | None | Unset): the request's label_map (vendor label key -> class key),
            applied to every answer before counting: part of the classifier certified; null when none
        ledger (LedgerPosition | None | Unset): the certificate's place in the service's ledger (null: none kept)
        mode (CertificateMode | Unset):  Default: CertificateMode.FIXED.
        savings (None | Savings | Unset): sequential: against the fixed-n plan
        signature (None | Signature | Unset): null: not signed (see the CLI)
        stop_reason (None | str | Unset): sequential: target_certified, target_unreachable, target_unlikely, converged,
            budget_exhausted or no_candidate
        target_radius (float | None | Unset):
        warnings (list[str] | Unset): why the result may mean less than it seems, though it is valid: the image far from
            what the classifier was made for (size, shape), a denoiser trained for another sigma; empty when none
    """

    abstained: bool
    alpha: float
    candidate: None | str
    candidate_source: CertificateCandidateSource
    classifier: ModelRef
    denoiser: ModelRef
    device: str
    image_digest: str
    label: None | str
    label_key: None | str
    n: int
    n0: int
    p_lower: float
    precision: str
    queries: Queries
    radius: float
    request_id: str
    sigma: float
    timings: Timings
    top_counts: list[LabelCount]
    bound: Bound | None | Unset = UNSET
    cost: float | Unset = 0.0
    issued_at: None | str | Unset = UNSET
    label_map: CertificateLabelMapType0 | None | Unset = UNSET
    ledger: LedgerPosition | None | Unset = UNSET
    mode: CertificateMode | Unset = CertificateMode.FIXED
    savings: None | Savings | Unset = UNSET
    signature: None | Signature | Unset = UNSET
    stop_reason: None | str | Unset = UNSET
    target_radius: float | None | Unset = UNSET
    warnings: list[str] | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.bound import Bound  # noqa: PLC0415
        from ..models.certificate_label_map_type_0 import CertificateLabelMapType0  # noqa: PLC0415
        from ..models.ledger_position import LedgerPosition  # noqa: PLC0415
        from ..models.savings import Savings  # noqa: PLC0415
        from ..models.signature import Signature  # noqa: PLC0415

        abstained = self.abstained

        alpha = self.alpha

        candidate: None | str
        candidate = self.candidate

        candidate_source = self.candidate_source.value

        classifier = self.classifier.to_dict()

        denoiser = self.denoiser.to_dict()

        device = self.device

        image_digest = self.image_digest

        label: None | str
        label = self.label

        label_key: None | str
        label_key = self.label_key

        n = self.n

        n0 = self.n0

        p_lower = self.p_lower

        precision = self.precision

        queries = self.queries.to_dict()

        radius = self.radius

        request_id = self.request_id

        sigma = self.sigma

        timings = self.timings.to_dict()

        top_counts = []
        for top_counts_item_data in self.top_counts:
            top_counts_item = top_counts_item_data.to_dict()
            top_counts.append(top_counts_item)

        bound: dict[str, Any] | None | Unset
        if isinstance(self.bound, Unset):
            bound = UNSET
        elif isinstance(self.bound, Bound):
            bound = self.bound.to_dict()
        else:
            bound = self.bound

        cost = self.cost

        issued_at: None | str | Unset
        if isinstance(self.issued_at, Unset):
            issued_at = UNSET
        else:
            issued_at = self.issued_at

        label_map: dict[str, Any] | None | Unset
        if isinstance(self.label_map, Unset):
            label_map = UNSET
        elif isinstance(self.label_map, CertificateLabelMapType0):
            label_map = self.label_map.to_dict()
        else:
            label_map = self.label_map

        ledger: dict[str, Any] | None | Unset
        if isinstance(self.ledger, Unset):
            ledger = UNSET
        elif isinstance(self.ledger, LedgerPosition):
            ledger = self.ledger.to_dict()
        else:
            ledger = self.ledger

        mode: str | Unset = UNSET
        if not isinstance(self.mode, Unset):
            mode = self.mode.value

        savings: dict[str, Any] | None | Unset
        if isinstance(self.savings, Unset):
            savings = UNSET
        elif isinstance(self.savings, Savings):
            savings = self.savings.to_dict()
        else:
            savings = self.savings

        signature: dict[str, Any] | None | Unset
        if isinstance(self.signature, Unset):
            signature = UNSET
        elif isinstance(self.signature, Signature):
            signature = self.signature.to_dict()
        else:
            signature = self.signature

        stop_reason: None | str | Unset
        if isinstance(self.stop_reason, Unset):
            stop_reason = UNSET
        else:
            stop_reason = self.stop_reason

        target_radius: float | None | Unset
        if isinstance(self.target_radius, Unset):
            target_radius = UNSET
        else:
            target_radius = self.target_radius

        warnings: list[str] | Unset = UNSET
        if not isinstance(self.warnings, Unset):
            warnings = self.warnings

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "abstained": abstained,
                "alpha": alpha,
                "candidate": candidate,
                "candidate_source": candidate_source,
                "classifier": classifier,
                "denoiser": denoiser,
                "device": device,
                "image_digest": image_digest,
                "label": label,
                "label_key": label_key,
                "n": n,
                "n0": n0,
                "p_lower": p_lower,
                "precision": precision,
                "queries": queries,
                "radius": radius,
                "request_id": request_id,
                "sigma": sigma,
                "timings": timings,
                "top_counts": top_counts,
            }
        )
        if bound is not UNSET:
            field_dict["bound"] = bound
        if cost is not UNSET:
            field_dict["cost"] = cost
        if issued_at is not UNSET:
            field_dict["issued_at"] = issued_at
        if label_map is not UNSET:
            field_dict["label_map"] = label_map
        if ledger is not UNSET:
            field_dict["ledger"] = ledger
        if mode is not UNSET:
            field_dict["mode"] = mode
        if savings is not UNSET:
            field_dict["savings"] = savings
        if signature is not UNSET:
            field_dict["signature"] = signature
        if stop_reason is not UNSET:
            field_dict["stop_reason"] = stop_reason
        if target_radius is not UNSET:
            field_dict["target_radius"] = target_radius
        if warnings is not UNSET:
            field_dict["warnings"] = warnings

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.bound import Bound  # noqa: PLC0415
        from ..models.certificate_label_map_type_0 import CertificateLabelMapType0  # noqa: PLC0415
        from ..models.label_count import LabelCount  # noqa: PLC0415
        from ..models.ledger_position import LedgerPosition  # noqa: PLC0415
        from ..models.model_ref import ModelRef  # noqa: PLC0415
        from ..models.queries import Queries  # noqa: PLC0415
        from ..models.savings import Savings  # noqa: PLC0415
        from ..models.signature import Signature  # noqa: PLC0415
        from ..models.timings import Timings  # noqa: PLC0415

        d = dict(src_dict)
        abstained = d.pop("abstained")

        alpha = d.pop("alpha")

        def _parse_candidate(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        candidate = _parse_candidate(d.pop("candidate"))

        candidate_source = CertificateCandidateSource(d.pop("candidate_source"))

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

        n0 = d.pop("n0")

        p_lower = d.pop("p_lower")

        precision = d.pop("precision")

        queries = Queries.from_dict(d.pop("queries"))

        radius = d.pop("radius")

        request_id = d.pop("request_id")

        sigma = d.pop("sigma")

        timings = Timings.from_dict(d.pop("timings"))

        top_counts = []
        _top_counts = d.pop("top_counts")
        for top_counts_item_data in _top_counts:
            top_counts_item = LabelCount.from_dict(top_counts_item_data)

            top_counts.append(top_counts_item)

        def _parse_bound(data: object) -> Bound | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                bound_type_0 = Bound.from_dict(data)

                return bound_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(Bound | None | Unset, data)

        bound = _parse_bound(d.pop("bound", UNSET))

        cost = d.pop("cost", UNSET)

        def _parse_issued_at(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        issued_at = _parse_issued_at(d.pop("issued_at", UNSET))

        def _parse_label_map(data: object) -> CertificateLabelMapType0 | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                label_map_type_0 = CertificateLabelMapType0.from_dict(data)

                return label_map_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(CertificateLabelMapType0 | None | Unset, data)

        label_map = _parse_label_map(d.pop("label_map", UNSET))

        def _parse_ledger(data: object) -> LedgerPosition | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                ledger_type_0 = LedgerPosition.from_dict(data)

                return ledger_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(LedgerPosition | None | Unset, data)

        ledger = _parse_ledger(d.pop("ledger", UNSET))

        _mode = d.pop("mode", UNSET)
        mode: CertificateMode | Unset
        if isinstance(_mode, Unset):
            mode = UNSET
        else:
            mode = CertificateMode(_mode)

        def _parse_savings(data: object) -> None | Savings | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                savings_type_0 = Savings.from_dict(data)

                return savings_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | Savings | Unset, data)

        savings = _parse_savings(d.pop("savings", UNSET))

        def _parse_signature(data: object) -> None | Signature | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                signature_type_0 = Signature.from_dict(data)

                return signature_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | Signature | Unset, data)

        signature = _parse_signature(d.pop("signature", UNSET))

        def _parse_stop_reason(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        stop_reason = _parse_stop_reason(d.pop("stop_reason", UNSET))

        def _parse_target_radius(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        target_radius = _parse_target_radius(d.pop("target_radius", UNSET))

        warnings = cast(list[str], d.pop("warnings", UNSET))

        certificate = cls(
            abstained=abstained,
            alpha=alpha,
            candidate=candidate,
            candidate_source=candidate_source,
            classifier=classifier,
            denoiser=denoiser,
            device=device,
            image_digest=image_digest,
            label=label,
            label_key=label_key,
            n=n,
            n0=n0,
            p_lower=p_lower,
            precision=precision,
            queries=queries,
            radius=radius,
            request_id=request_id,
            sigma=sigma,
            timings=timings,
            top_counts=top_counts,
            bound=bound,
            cost=cost,
            issued_at=issued_at,
            label_map=label_map,
            ledger=ledger,
            mode=mode,
            savings=savings,
            signature=signature,
            stop_reason=stop_reason,
            target_radius=target_radius,
            warnings=warnings,
        )

        return certificate
