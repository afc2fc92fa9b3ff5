from enum import StrEnum


class CertifyEstimateRequestCandidateType0(StrEnum):
    CLEAN = "clean"
    NOISY = "noisy"

    def __str__(self) -> str:
        return str(self.value)
