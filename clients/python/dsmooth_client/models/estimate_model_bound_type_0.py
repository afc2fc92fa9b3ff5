from enum import StrEnum


class EstimateModelBoundType0(StrEnum):
    BETTING = "betting"
    CP_SPENDING = "cp-spending"

    def __str__(self) -> str:
        return str(self.value)
