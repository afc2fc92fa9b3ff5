import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from benchmarks.report import PAPER_ROWS, render_report

DSMOOTH = str(Path(sys.executable).with_name("dsmooth"))


def _bench(path: Path) -> Path:
    results = [
        {"correct": i % 4 != 0, "radius": 0.1 * (i % 10), "label": "cat", "predicted": "cat"}
        for i in range(40)
    ]
    rows = [
        {"denoiser": {"name": "unet", "version": "1"}, "sigma": s, "results": results}
        for s in (0.25, 0.5)
    ]
    report = {
        "benchmark": "certified_accuracy", "classifier": {"name": "cifar-resnet56"},
        "n": 1000, "alpha": 0.001, "data": {"count": 40}, "rows": rows,
    }  # fmt: skip
    path.write_text(json.dumps(report))
    return path


def test_report_writes_a_plot_and_a_table(tmp_path: Path) -> None:
    png, markdown = render_report(_bench(tmp_path / "bench.json"))
    with Image.open(png) as image:
        assert image.format == "PNG" and image.width > 400
    table = markdown.read_text()
    # 30 of 40 correct; correct with radius >= 0.5 (i % 10 >= 5, i % 4 != 0): 16 of 40.
    assert "| unet (this project) | 75.0 | 55.0 | 40.0 | 15.0 | 0.0 |" in table
    assert all(f"{name} (published)" in table for name in PAPER_ROWS)


@pytest.mark.subprocess
@pytest.mark.slow
def test_report_command_refuses_other_json(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text('{"benchmark": "throughput"}')
    result = subprocess.run([DSMOOTH, "report", str(other)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "not a certified-accuracy benchmark" in result.stderr
    ok = subprocess.run(
        [DSMOOTH, "report", str(_bench(tmp_path / "b.json")), "--out-dir", str(tmp_path / "o")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert ok.returncode == 0 and (tmp_path / "o/b.png").exists()
