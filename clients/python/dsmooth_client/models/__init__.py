"""Contains all the data models used in inputs/outputs"""

from .bound import Bound
from .bound_kind import BoundKind
from .certificate import Certificate
from .certificate_candidate_source import CertificateCandidateSource
from .certificate_label_map_type_0 import CertificateLabelMapType0
from .certificate_mode import CertificateMode
from .certify_estimate_form import CertifyEstimateForm
from .certify_estimate_form_candidate_type_0 import CertifyEstimateFormCandidateType0
from .certify_estimate_form_mode import CertifyEstimateFormMode
from .certify_estimate_request import CertifyEstimateRequest
from .certify_estimate_request_candidate_type_0 import CertifyEstimateRequestCandidateType0
from .certify_estimate_request_label_map_type_0 import CertifyEstimateRequestLabelMapType0
from .certify_estimate_request_mode import CertifyEstimateRequestMode
from .certify_form import CertifyForm
from .certify_form_candidate_type_0 import CertifyFormCandidateType0
from .certify_form_mode import CertifyFormMode
from .certify_request import CertifyRequest
from .certify_request_candidate_type_0 import CertifyRequestCandidateType0
from .certify_request_label_map_type_0 import CertifyRequestLabelMapType0
from .certify_request_mode import CertifyRequestMode
from .classifier_info import ClassifierInfo
from .cost_estimate import CostEstimate
from .cost_estimate_candidate import CostEstimateCandidate
from .cost_estimate_mode import CostEstimateMode
from .denoiser_info import DenoiserInfo
from .estimate_model import EstimateModel
from .estimate_model_bound_type_0 import EstimateModelBoundType0
from .estimate_model_method import EstimateModelMethod
from .field_error import FieldError
from .health import Health
from .health_checks import HealthChecks
from .job_form import JobForm
from .job_form_candidate_type_0 import JobFormCandidateType0
from .job_form_mode import JobFormMode
from .job_form_operation import JobFormOperation
from .job_progress import JobProgress
from .job_request import JobRequest
from .job_request_candidate_type_0 import JobRequestCandidateType0
from .job_request_label_map_type_0 import JobRequestLabelMapType0
from .job_request_mode import JobRequestMode
from .job_request_operation import JobRequestOperation
from .job_state import JobState
from .job_view import JobView
from .label_count import LabelCount
from .ledger_position import LedgerPosition
from .model_ref import ModelRef
from .predict_form import PredictForm
from .predict_request import PredictRequest
from .predict_request_label_map_type_0 import PredictRequestLabelMapType0
from .prediction import Prediction
from .prediction_label_map_type_0 import PredictionLabelMapType0
from .preview import Preview
from .preview_form import PreviewForm
from .preview_request import PreviewRequest
from .problem import Problem
from .queries import Queries
from .queries_at_pa import QueriesAtPA
from .savings import Savings
from .signature import Signature
from .signing_keys_response_signing_keys import SigningKeysResponseSigningKeys
from .signing_keys_response_signing_keys_additional_property_item import (
    SigningKeysResponseSigningKeysAdditionalPropertyItem,
)
from .stream_job_events_response_200 import StreamJobEventsResponse200
from .stream_job_events_response_200_event import StreamJobEventsResponse200Event
from .timings import Timings
from .usage import Usage

__all__ = (
    "Bound",
    "BoundKind",
    "Certificate",
    "CertificateCandidateSource",
    "CertificateLabelMapType0",
    "CertificateMode",
    "CertifyEstimateForm",
    "CertifyEstimateFormCandidateType0",
    "CertifyEstimateFormMode",
    "CertifyEstimateRequest",
    "CertifyEstimateRequestCandidateType0",
    "CertifyEstimateRequestLabelMapType0",
    "CertifyEstimateRequestMode",
    "CertifyForm",
    "CertifyFormCandidateType0",
    "CertifyFormMode",
    "CertifyRequest",
    "CertifyRequestCandidateType0",
    "CertifyRequestLabelMapType0",
    "CertifyRequestMode",
    "ClassifierInfo",
    "CostEstimate",
    "CostEstimateCandidate",
    "CostEstimateMode",
    "DenoiserInfo",
    "EstimateModel",
    "EstimateModelBoundType0",
    "EstimateModelMethod",
    "FieldError",
    "Health",
    "HealthChecks",
    "JobForm",
    "JobFormCandidateType0",
    "JobFormMode",
    "JobFormOperation",
    "JobProgress",
    "JobRequest",
    "JobRequestCandidateType0",
    "JobRequestLabelMapType0",
    "JobRequestMode",
    "JobRequestOperation",
    "JobState",
    "JobView",
    "LabelCount",
    "LedgerPosition",
    "ModelRef",
    "PredictForm",
    "Prediction",
    "PredictionLabelMapType0",
    "PredictRequest",
    "PredictRequestLabelMapType0",
    "Preview",
    "PreviewForm",
    "PreviewRequest",
    "Problem",
    "Queries",
    "QueriesAtPA",
    "Savings",
    "Signature",
    "SigningKeysResponseSigningKeys",
    "SigningKeysResponseSigningKeysAdditionalPropertyItem",
    "StreamJobEventsResponse200",
    "StreamJobEventsResponse200Event",
    "Timings",
    "Usage",
)
