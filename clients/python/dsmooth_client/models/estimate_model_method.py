from enum import StrEnum


class EstimateModelMethod(StrEnum):
    EXPECTED_VOTE_PATHS = "expected-vote-paths"
    FIXED_PLAN = "fixed-plan"

    def __str__(self) -> str:
        return str(self.value)
