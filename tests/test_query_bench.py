"""`dsmooth bench queries`: every plan through the real gateway, on two CIFAR-10 images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import query_efficiency
from benchmarks.evaluation import default_data, default_target

pytestmark = pytest.mark.skipif(
    not default_data().is_file() or not Path(default_target().split(":", 1)[1]).is_file(),
    reason="needs the CIFAR-10 test set and ResNet-56 in ../shared",
)


@pytest.mark.slow
def test_every_plan_reports_its_queries_certificates_and_dollars(tmp_path: Path) -> None:
    out = tmp_path / "queries.json"
    query_efficiency.main(
        ["--count", "2", "--photos", "0", "--n", "400", "--sigma", "0.25", "--radius", "0.25",
         "--out", str(out)]
    )  # fmt: skip
    report = json.loads(out.read_text())
    [setting] = report["settings"]
    rows = {row["plan"]: row for row in setting["rows"]}
    assert set(rows) == set(query_efficiency.PLANS)
    assert rows["fixed"]["queries"] == [500, 500]  # n0 + n, whatever the image
    for row in rows.values():
        assert len(row["queries"]) == 2 and 0 <= row["certified"] <= 2
        assert row["queries_mean"] == sum(row["queries"]) / 2
        google = query_efficiency.PRICES["google"]
        assert row["usd_per_image"]["google"] == round(row["queries_mean"] * google, 5)
    # The default reads the same noise as betting-8 (same stream, same secret) and only adds a
    # reason to stop: never more queries, never a certificate betting-8 lacks.
    for fewer, more in zip(rows["default"]["queries"], rows["betting-8"]["queries"], strict=True):
        assert fewer <= more
    assert rows["default"]["certified"] <= rows["betting-8"]["certified"]
    assert out.with_suffix(".png").stat().st_size > 0
    assert "| cifar10 (2) | 0.25 | 0.25 | fixed |" in query_efficiency.format_table(report)
