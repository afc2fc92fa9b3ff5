from enum import StrEnum


class JobFormMode(StrEnum):
    FIXED = "fixed"
    SEQUENTIAL = "sequential"

    def __str__(self) -> str:
        return str(self.value)
