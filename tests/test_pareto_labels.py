"""The one Pareto implementation (``greentrack.report.pareto``): labels inside their panel, apart.

``plot --kind pareto`` and ``bench --plot`` share :func:`place_labels`; these tests check the
report's chart gained what ``bench --plot`` already had (text extents from the figure's own
renderer, as ``tests/figcheck.py`` measures them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib")

from figcheck import figure_problems

from greentrack.report import pareto, plotting


def _figure(monkeypatch: pytest.MonkeyPatch, points: list[dict[str, Any]], out: Path) -> Any:
    figs: list[Any] = []
    real = plotting.save

    def save(fig: Any, target: Any, fmt: str | None) -> Any:
        figs.append(fig)
        return real(fig, target, fmt)

    monkeypatch.setattr(plotting, "save", save)
    pareto.plot_pareto(points, out)
    assert out.read_bytes()[:4] == b"\x89PNG"
    return figs[-1]


def _boxes(fig: Any) -> tuple[Any, list[tuple[str, Any]]]:
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    return ax.get_window_extent(renderer), [
        (t.get_text(), t.get_window_extent(renderer)) for t in ax.texts
    ]


def test_a_label_at_the_right_edge_stays_inside_the_panel(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pts = [(1.0, 0.5), (3.0, 0.7), (10.0, 0.9)]  # the best run is the rightmost point
    points = [
        {"energy_kwh": e, "value": v, "label": f"a-long-run-name-{i}", "final": False}
        for i, (e, v) in enumerate(pts)
    ]
    fig = _figure(monkeypatch, points, tmp_path / "edge.png")
    assert figure_problems(fig) == []
    frame, boxes = _boxes(fig)
    assert [text for text, _ in boxes] == [f"a-long-run-name-{i}" for i in range(3)]
    for text, bb in boxes:
        assert frame.x0 <= bb.x0 and bb.x1 <= frame.x1, text
        assert frame.y0 <= bb.y0 and bb.y1 <= frame.y1, text


def test_a_crowded_front_is_labelled_up_to_max_labels_without_overlap(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    points = [
        {"energy_kwh": 1 + 0.02 * i, "value": 0.5 + 0.01 * i, "label": f"trial-{i:02d}"}
        for i in range(12)
    ]  # every run is on the front, each a little right of and above the last
    fig = _figure(monkeypatch, points, tmp_path / "steep.png")
    assert figure_problems(fig) == []
    frame, boxes = _boxes(fig)
    assert 8 <= len(boxes) <= 10  # max_labels=10; the old fixed offset dropped every second one
    for i, (a, ba) in enumerate(boxes):
        assert frame.x0 <= ba.x0 and ba.x1 <= frame.x1, a
        for b, bb in boxes[i + 1 :]:
            assert not ba.overlaps(bb), (a, b)


def test_place_labels_drops_a_label_no_spot_keeps_clear_only_when_asked() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def draw(drop_hidden: bool) -> int:
        fig = Figure(figsize=(2.0, 1.2))
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        fig.canvas.draw()
        items = [(f"label number {i}", 0.5, 0.5) for i in range(20)]  # all on one point
        placed = pareto.place_labels(fig, ax, items, drop_hidden=drop_hidden)
        assert len(ax.texts) == placed
        return placed

    assert draw(drop_hidden=False) == 20  # bench: every point labelled, least overlap
    assert 1 <= draw(drop_hidden=True) < 20  # report: only those that hide nothing
