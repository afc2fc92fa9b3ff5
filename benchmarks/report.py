"""``dsmooth report BENCH.json...``: certified-accuracy curves as a PNG plot and a markdown table.

One line per method (a denoiser, best over sigma at every radius, as the papers report it), the
published rows as markers for comparison. Several benchmark JSONs of one setting (rows measured in
separate runs, on separate machines) merge into one report.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["PAPER_ROWS", "RADII", "merge_reports", "plot_curves", "render_report"]

# The radii of the tables (certified accuracy at r), here beside the published rows at r > 0.
RADII = (0.0, 0.25, 0.5, 0.75, 1.0)
# Certified accuracy (%) on CIFAR-10 at r = 0.25, 0.5, 0.75, 1.0 (reference/smoothing.md).
PAPER_ROWS: dict[str, tuple[float, float, float, float]] = {
    "no denoiser (Salman et al.)": (7, 3, 0, 0),
    "denoised smoothing, black-box": (45, 20, 15, 13),
    "denoised smoothing, white-box": (56, 41, 28, 19),
    "Cohen et al., noise-trained": (59, 45, 31, 21),
    "Carlini et al. 2023, diffusion": (79.3, 65.5, 48.7, 35.5),
}


def _curve(results: list[dict[str, Any]], radii: list[float]) -> list[float]:
    return [
        100 * sum(1 for r in results if r["correct"] and r["radius"] >= radius) / len(results)
        for radius in radii
    ]


def _methods(report: dict[str, Any], radii: list[float]) -> dict[str, list[float]]:
    """Per method (or denoiser), the best certified accuracy over sigma at every radius."""
    best: dict[str, list[float]] = {}
    for row in report["rows"]:
        curve = _curve(row["results"], radii)
        name = row.get("method") or row["denoiser"]["name"]
        best[name] = [max(a, b) for a, b in zip(best.get(name, curve), curve, strict=True)]
    return best


# What must agree for rows of separate runs to share one table: the same target, images and
# statistics. Machine, precision and date may differ (each row keeps its run's provenance).
_SETTING = ("classifier", "n", "n0", "alpha", "radii")


def _load(path: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(path.read_text())
    if report.get("benchmark") != "certified_accuracy" or not report.get("rows"):
        raise ValueError(f"{path}: not a certified-accuracy benchmark (see dsmooth bench certify)")
    return report


def _images(report: dict[str, Any]) -> tuple[str, int]:
    return Path(report["data"].get("path", "")).name, report["data"]["count"]


def merge_reports(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One certified-accuracy report from the rows of several runs of one setting; each row
    keeps its run's machine, precision and date. ValueError when the settings differ or a
    (row, sigma) is measured twice."""
    merged = {**reports[0], "rows": [], "skipped": [], "runs": []}
    seen: set[tuple[str, float]] = set()
    for report in reports:
        for field in _SETTING:
            if report.get(field) != reports[0].get(field):
                raise ValueError(
                    f"cannot merge runs with different {field}: "
                    f"{reports[0].get(field)!r} and {report.get(field)!r}"
                )
        if _images(report) != _images(reports[0]):
            raise ValueError(f"cannot merge runs on different images: {_images(reports[0])} "
                             f"and {_images(report)}")  # fmt: skip
        run = {k: report.get(k) for k in ("precision", "provenance", "date")}
        for row in report["rows"]:
            measured = (row.get("method") or row["denoiser"]["name"], row["sigma"])
            if measured in seen:
                raise ValueError(f"row {measured[0]!r} at sigma {measured[1]} is in two runs")
            seen.add(measured)
            merged["rows"].append({**row, "run": len(merged["runs"])})
        merged["skipped"] += report.get("skipped", [])
        merged["runs"].append(run)
    return merged


def render_report(
    paths: Path | Sequence[Path], out_dir: Path | None = None, name: str | None = None
) -> tuple[Path, Path]:
    """Write ``<name>.png`` and ``<name>.md`` for a certified-accuracy benchmark JSON (``name``:
    its stem), or for several merged (then also ``<name>.json``, the merged report; ``name``:
    ``merged``)."""
    paths = [paths] if isinstance(paths, Path) else list(paths)
    report = merge_reports([_load(path) for path in paths])
    out_dir = out_dir or paths[0].parent
    stem = name or (paths[0].stem if len(paths) == 1 else "merged")
    merged_json = out_dir / f"{stem}.json"
    if len(paths) > 1 and any(merged_json.resolve() == path.resolve() for path in paths):
        raise ValueError(f"{merged_json} is one of the inputs: give the merged report a --name")
    out_dir.mkdir(parents=True, exist_ok=True)
    top = max(r["radius"] for row in report["rows"] for r in row["results"]) or 1.0
    grid = [top * 1.05 * i / 200 for i in range(201)]
    methods = _methods(report, grid)

    markers = {name: (list(RADII[1:]), list(values)) for name, values in PAPER_ROWS.items()}
    classifier = report["classifier"]["name"]
    title = (
        f"{classifier}, n = {report['n']:,}, alpha = {report['alpha']}, "
        f"{report['data']['count']} test images"
    )
    png = plot_curves(
        out_dir / f"{stem}.png", {name: (grid, curve) for name, curve in methods.items()},
        markers, title,
    )  # fmt: skip

    at_radii = _methods(report, list(RADII))
    header = "| method | " + " | ".join(f"r = {r}" for r in RADII) + " |"
    lines = [header, "|---" * (len(RADII) + 1) + "|"]
    for name, ours in at_radii.items():
        lines.append(f"| {name} (this project) | " + " | ".join(f"{v:.1f}" for v in ours) + " |")
    for name, published in PAPER_ROWS.items():
        cells = " | ".join(f"{v:g}" for v in published)
        lines.append(f"| {name} (published) | - | {cells} |")
    markdown = out_dir / f"{stem}.md"
    markdown.write_text(
        f"Certified accuracy (%), {classifier}, n = {report['n']:,}, alpha = {report['alpha']}, "
        f"best over sigma {sorted({row['sigma'] for row in report['rows']})}, "
        f"{report['data']['count']} test images.\n\n" + "\n".join(lines) + "\n"
    )
    if len(paths) > 1:
        merged_json.write_text(json.dumps(report, indent=1))
    return png, markdown


def plot_curves(
    png: Path,
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    markers: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    title: str,
    dashed: Sequence[str] = (),
) -> Path:
    """Certified accuracy (%) against the L2 radius: one line per curve (those named in ``dashed``
    dashed), the published points of ``markers`` as unconnected markers; written to ``png``
    (folders made as needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    for name, (radii, accuracy) in curves.items():
        style = "--" if name in dashed else "-"
        axes.plot(radii, accuracy, style, label=name, linewidth=2)
    shapes = "os^Dv"
    for (name, (radii, accuracy)), marker in zip(markers.items(), shapes, strict=False):
        axes.plot(radii, accuracy, linestyle="none", marker=marker, label=name, alpha=0.8)
    axes.set_xlabel("L2 radius (pixel units in [0, 1])")
    axes.set_ylabel("certified accuracy (%)")
    axes.set_title(title)
    axes.set_ylim(0, 100)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png)
    plt.close(figure)
    return png
