from enum import StrEnum


class CostEstimateMode(StrEnum):
    FIXED = "fixed"
    SEQUENTIAL = "sequential"

    def __str__(self) -> str:
        return str(self.value)
