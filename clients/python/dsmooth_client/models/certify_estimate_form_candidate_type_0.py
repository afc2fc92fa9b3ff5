from enum import StrEnum


class CertifyEstimateFormCandidateType0(StrEnum):
    CLEAN = "clean"
    NOISY = "noisy"

    def __str__(self) -> str:
        return str(self.value)
