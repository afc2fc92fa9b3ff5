"""Contains all the data models used in inputs/outputs"""

from .certificate import Certificate
from .certificate_candidate_source import CertificateCandidateSource
from .certify_request import CertifyRequest
from .certify_request_candidate import CertifyRequestCandidate
from .certify_request_label_map_type_0 import CertifyRequestLabelMapType0
from .classifier_info import ClassifierInfo
from .denoiser_info import DenoiserInfo
from .field_error import FieldError
from .health import Health
from .health_checks import HealthChecks
from .job_progress import JobProgress
from .job_request import JobRequest
from .job_request_candidate import JobRequestCandidate
from .job_request_label_map_type_0 import JobRequestLabelMapType0
from .job_request_operation import JobRequestOperation
from .job_state import JobState
from .job_view import JobView
from .label_count import LabelCount
from .model_ref import ModelRef
from .predict_request import PredictRequest
from .predict_request_label_map_type_0 import PredictRequestLabelMapType0
from .prediction import Prediction
from .problem import Problem
from .queries import Queries
from .timings import Timings

__all__ = (
    "Certificate",
    "CertificateCandidateSource",
    "CertifyRequest",
    "CertifyRequestCandidate",
    "CertifyRequestLabelMapType0",
    "ClassifierInfo",
    "DenoiserInfo",
    "FieldError",
    "Health",
    "HealthChecks",
    "JobProgress",
    "JobRequest",
    "JobRequestCandidate",
    "JobRequestLabelMapType0",
    "JobRequestOperation",
    "JobState",
    "JobView",
    "LabelCount",
    "ModelRef",
    "Prediction",
    "PredictRequest",
    "PredictRequestLabelMapType0",
    "Problem",
    "Queries",
    "Timings",
)
