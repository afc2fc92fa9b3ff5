from enum import StrEnum


class JobRequestCandidate(StrEnum):
    CLEAN = "clean"
    NOISY = "noisy"

    def __str__(self) -> str:
        return str(self.value)
