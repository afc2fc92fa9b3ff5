from enum import StrEnum


class CertifyRequestCandidate(StrEnum):
    CLEAN = "clean"
    NOISY = "noisy"

    def __str__(self) -> str:
        return str(self.value)
