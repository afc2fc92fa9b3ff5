import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from benchmarks.report import PAPER_ROWS, merge_reports, render_report

DSMOOTH = str(Path(sys.executable).with_name("dsmooth"))


def _bench(
    path: Path, sigmas: tuple[float, ...] = (0.25, 0.5), bump: float = 0.0, n: int = 1000
) -> Path:
    results = [
        {"correct": i % 4 != 0, "radius": 0.1 * (i % 10) + bump, "label": "cat",
         "predicted": "cat"}
        for i in range(40)
    ]  # fmt: skip
    rows = [
        {"denoiser": {"name": "unet", "version": "1"}, "sigma": s, "results": results}
        for s in sigmas
    ]
    report = {
        "benchmark": "certified_accuracy", "classifier": {"name": "cifar-resnet56"},
        "n": n, "alpha": 0.001, "data": {"count": 40}, "rows": rows,
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
    two = [str(_bench(tmp_path / "c.json", (1.0,))), str(tmp_path / "b.json")]
    merged = subprocess.run([DSMOOTH, "report", *two, "--out-dir", str(tmp_path / "o"),
                             "--name", "both"], capture_output=True, text=True)  # fmt: skip
    assert merged.returncode == 0 and (tmp_path / "o/both.json").exists()
    twice = subprocess.run([DSMOOTH, "report", two[1], two[1]], capture_output=True, text=True)
    assert twice.returncode == 2 and "is in two runs" in twice.stderr


def test_rows_of_separate_runs_merge_into_one_report(tmp_path: Path) -> None:
    first = _bench(tmp_path / "a.json", sigmas=(0.25,))
    # Every radius of the second run is larger by 0.25: best over sigma takes them.
    second = _bench(tmp_path / "b.json", sigmas=(0.5,), bump=0.25)
    png, markdown = render_report([first, second], tmp_path / "out", "both")
    merged = json.loads((tmp_path / "out/both.json").read_text())
    assert [(row["sigma"], row["run"]) for row in merged["rows"]] == [(0.25, 0), (0.5, 1)]
    assert len(merged["runs"]) == 2 and png.exists()
    alone = render_report(first, tmp_path / "alone")[1].read_text()
    assert "| unet (this project) | 75.0 | 55.0 | 40.0 |" in alone
    assert "| unet (this project) | 75.0 | 75.0 | 55.0 | 40.0 |" in markdown.read_text()


def test_runs_of_different_settings_or_one_row_twice_do_not_merge(tmp_path: Path) -> None:
    first = json.loads(_bench(tmp_path / "a.json").read_text())
    other_n = json.loads(_bench(tmp_path / "b.json", sigmas=(1.0,), n=10_000).read_text())
    with pytest.raises(ValueError, match="different n"):
        merge_reports([first, other_n])
    with pytest.raises(ValueError, match=r"at sigma 0\.25 is in two runs"):
        merge_reports([first, first])
    with pytest.raises(ValueError, match="one of the inputs"):
        render_report([tmp_path / "a.json", _bench(tmp_path / "c.json", (1.0,))], tmp_path, "a")
