from enum import StrEnum


class CostEstimateCandidate(StrEnum):
    CLEAN = "clean"
    NOISY = "noisy"

    def __str__(self) -> str:
        return str(self.value)
