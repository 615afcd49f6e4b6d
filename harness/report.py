"""What the generated pages share: markdown that shows text verbatim, the Pareto front, and the figures.

The leaderboard, the tuning report and the analysis pages are committed and must rebuild byte for byte
from the files they are made from, so everything here is deterministic: floats have a fixed format, paths
on a page are relative to the page's folder, and the figures carry no build time (matplotlib writes none
into a PNG; its version stamp is left out too, except on the tuning figure, which has always carried it).

The pages only read plain data: each caller turns its own files (run folders, study folders, analysis
results) into the points, labels and rows drawn here.
"""

from __future__ import annotations

import math
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Hashable, Iterable, Mapping, TypeVar
from urllib.parse import quote

from tabulate import tabulate

from harness.errors import HarnessError

Point = tuple[float, float]
K = TypeVar("K", bound=Hashable)

# --- markdown ---------------------------------------------------------------------------------

# Characters that HTML or markdown would interpret, written as character references so they
# show as themselves: tags and entities, table pipes, code spans, emphasis, links/images,
# headings, escapes, math.
_MD_ENTITIES = {
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
    "|": "&#124;", "`": "&#96;", "*": "&#42;", "_": "&#95;", "[": "&#91;", "]": "&#93;",
    "~": "&#126;", "\\": "&#92;", "#": "&#35;", "!": "&#33;", "$": "&#36;",
}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u2028\u2029]")


def md_escape(text: Any, max_chars: int | None = None) -> str:
    """Text that markdown shows verbatim on one line: HTML, pipes, backticks, markup and newlines escaped.

    Line breaks become ``<br>`` (the only markup this emits), other control characters become
    U+FFFD, and text over ``max_chars`` is cut with an ellipsis before escaping.
    """
    s = "" if text is None else str(text)
    if max_chars is not None and len(s) > max_chars:
        s = s[:max_chars] + "…"
    s = s.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    s = _CONTROL.sub("\ufffd", s)
    s = "".join(_MD_ENTITIES.get(ch, ch) for ch in s)  # one pass: no entity is escaped twice
    return s.replace("\n", "<br>")


def fmt(value: float | None, digits: int = 3) -> str:
    """A fixed float format; ``-`` for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def md_table(headers: list[str], rows: list[list[Any]], *, align_numbers: bool = False) -> str:
    """A GitHub table of cells already escaped. Cells are taken as text unless ``align_numbers`` (the
    tuning report's tables), where tabulate right-aligns columns that read as numbers."""
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=not align_numbers)


def code_block(intro: str, command: str) -> list[str]:
    """The lines of a page's shell block, introduced by ``intro`` (how to rebuild or repeat the page)."""
    return [intro, "", "```bash", command, "```", ""]


def page_relative(path: str | Path, base: Path) -> str:
    """``path`` as seen from ``base`` (a generated page's folder), with forward slashes."""
    return Path(os.path.relpath(Path(path).resolve(), base.resolve())).as_posix()


def link(target: Path, base: Path, text: str) -> str:
    """A markdown link from a page in ``base`` to ``target``."""
    return f"[{md_escape(text)}]({quote(page_relative(target, base))})"


def page_command(words: list[str | Path], base: Path) -> str:
    """A shell line for a generated page's code block: ``Path`` words made relative to ``base`` (the page's
    folder, where the line is to be run), everything quoted; a backtick or line break would break the block."""
    parts = [page_relative(w, base) if isinstance(w, Path) else w for w in words]
    bad = [p for p in parts if "`" in p or "\n" in p or "\r" in p]
    if bad:
        raise HarnessError(f"path(s) {', '.join(map(repr, bad))} contain a backtick or line break; rename them.")
    return " ".join(shlex.quote(p) for p in parts)


# --- the Pareto front -------------------------------------------------------------------------


def pareto_front(points: Mapping[K, Point]) -> set[K]:
    """Keys of the points no other point beats (lower or equal on both axes, lower on one); lower is better
    on both axes. Points at the same spot do not beat each other: all of them are on the front or none."""
    front = set()
    for key, (x, y) in points.items():
        dominated = any(
            (x2 <= x and y2 <= y) and (x2 < x or y2 < y) for k2, (x2, y2) in points.items() if k2 != key
        )
        if not dominated:
            front.add(key)
    return front


def front_line(points: Iterable[Point]) -> list[Point]:
    """The distinct points on the front, in x order: the line a figure draws through them."""
    return sorted(pareto_front({p: p for p in points}))


# --- figures ----------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display: figures are only written to files
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, *, version_stamp: bool = False) -> None:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, **({} if version_stamp else {"metadata": {"Software": None}}))
    _pyplot().close(fig)


def _tex_safe(text: str) -> str:
    return text.replace("$", r"\$")  # matplotlib reads $...$ as math


@dataclass
class Panel:
    """One panel of the leaderboard's scatter: a point and a label per run, under a title."""

    title: str
    points: dict[str, Point]  # run id -> (mean over-refusal, mean ASR)
    labels: dict[str, str]  # run id -> what the point is called (the defense)


def scatter(panels: list[Panel], path: Path, xlabel: str, ylabel: str) -> None:
    """Panels side by side, each with its Pareto front marked (stars) and drawn as a step line."""
    plt = _pyplot()
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(6.4 * n, 5.2), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        points = panel.points
        front = pareto_front(points)
        # runs that land on the same spot (to the plotted precision) share one label instead of overprinting
        spots: dict[Point, list[str]] = {}
        for key in sorted(points, key=lambda k: (points[k], panel.labels[k], k)):
            spots.setdefault((round(points[key][0], 2), round(points[key][1], 2)), []).append(key)
        placed: list[Point] = []
        for (x, y), keys in sorted(spots.items(), key=lambda item: (-item[0][1], item[0][0])):
            on = any(key in front for key in keys)
            ax.scatter([x], [y], s=60 if on else 36, marker="*" if on else "o",
                       color="tab:red" if on else "tab:blue", zorder=3)
            label = _tex_safe(", ".join(panel.labels[key] for key in keys))
            right = x > 0.6  # labels of points near the right edge go to their left
            # nearby points would print their labels over each other: move a label down until it is clear
            ly = y + 0.012
            while any(abs(ly - py) < 0.035 and abs(x - px) < 0.3 for px, py in placed):
                ly -= 0.035
            placed.append((x, ly))
            ax.annotate(label, (x, y), xytext=(x - 0.012 if right else x + 0.012, ly), fontsize=8,
                        ha="right" if right else "left", va="bottom",
                        arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5} if abs(ly - y) > 0.02 else None)
        if front:
            fx, fy = zip(*sorted(points[k] for k in front))
            ax.step(fx, fy, where="post", color="tab:red", linestyle="--", linewidth=1, label="Pareto front", zorder=2)
            ax.legend(loc="upper right", fontsize=8)
        ax.set_xlim(-0.05, 1.05)
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(_tex_safe(panel.title), fontsize=9)
        ax.grid(True, alpha=0.3)
    _save(fig, path)


@dataclass
class Study:
    """One tuning study in the trade-off figure: its trials as (over-refusal, ASR, trial number)."""

    label: str
    trials: list[tuple[float, float, int]]
    broken: set[int]  # trials too incoherent to count: drawn apart and kept off the front
    chosen: int


def tradeoff(studies: list[Study], baseline: Point | None, path: Path, *, xlabel: str, ylabel: str,
             title: str) -> None:
    """Every trial of every study in one plot, a colour per study: its front as a line, its choice a star."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    for i, study in enumerate(studies):
        colour = f"C{i % 10}"
        sound = [p for p in study.trials if p[2] not in study.broken]
        broken = [p for p in study.trials if p[2] in study.broken]
        ax.scatter([p[0] for p in sound], [p[1] for p in sound], color=colour, alpha=0.6, label=study.label)
        ax.scatter([p[0] for p in broken], [p[1] for p in broken], color=colour, marker="x", s=60)
        front = front_line((x, y) for x, y, _ in sound)
        ax.plot([p[0] for p in front], [p[1] for p in front], color=colour, linewidth=1)
        chosen = [p for p in study.trials if p[2] == study.chosen][0]
        ax.scatter([chosen[0]], [chosen[1]], color=colour, marker="*", s=220, edgecolor="black", zorder=5)
    if baseline is not None:
        ax.scatter([baseline[0]], [baseline[1]], color="black", marker="X", s=120, label="undefended", zorder=6)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    _save(fig, path, version_stamp=True)


LAYER_AXIS = "layer (0 = embeddings)"


def layer_lines(path: Path, layers: list[int], series: dict[str, list[float]], title: str, ylabel: str,
                chance: float | None = None) -> None:
    """Shares per layer (0 to 1), a line per series; ``chance`` drawn as a dotted line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for name, values in series.items():
        ax.plot(layers, values, marker="o", markersize=3, label=name)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle=":", linewidth=1, label="chance")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(LAYER_AXIS)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def mass_panels(path: Path, layers: list[int], mass: dict[str, dict[str, list[float]]],
                solid: Iterable[str]) -> None:
    """The logit lens's refusal mass, compliance mass and their log ratio per layer, a line per prompt set
    (sets in ``solid`` drawn solid, the others dotted)."""
    import numpy as np

    plt = _pyplot()
    solid = set(solid)
    tiny = 1e-12  # keeps log scales finite where a mass underflows to 0
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for name, m in mass.items():
        style = "-" if name in solid else ":"
        r = [max(v, tiny) for v in m["refusal"]]
        c = [max(v, tiny) for v in m["compliance"]]
        axes[0].plot(layers, r, style, marker="o", markersize=2, label=name)
        axes[1].plot(layers, c, style, marker="o", markersize=2, label=name)
        axes[2].plot(layers, [float(np.log10(a / b)) for a, b in zip(r, c)], style, marker="o", markersize=2,
                     label=name)
    titles = ("refusal-like token mass", "compliance-like token mass", "log10(refusal mass / compliance mass)")
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(LAYER_AXIS)
        ax.grid(True, alpha=0.3)
    axes[0].set_yscale("log")
    axes[1].set_yscale("log")
    axes[0].set_ylabel("mean probability")
    axes[2].axhline(0, color="grey", linewidth=0.8)
    axes[0].legend(fontsize=7)
    _save(fig, path)


@dataclass
class TrajectoryRow:
    """One training run's series against the step: name -> (steps, values)."""

    name: str
    terms: dict[str, tuple[list[int], list[float]]]
    measures: dict[str, tuple[list[int], list[float]]]
    grads: dict[str, tuple[list[int], list[float]]]
    probe: dict[str, tuple[list[int], list[float]]]


def trajectory_rows(rows: list[TrajectoryRow], path: Path) -> None:
    """Four panels per run: loss terms, representation measures, gradient norms (log scale), behaviour probe."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), 4, figsize=(19, 3.6 * len(rows)), squeeze=False)
    titles = ("loss terms", "cos: harmful to frozen; retain_rel: benign distance",
              "gradient norm of each weighted term", "behaviour probe (share of answers)")
    for ax_row, row in zip(axes, rows):
        for ax, series, title in zip(ax_row, (row.terms, row.measures, row.grads, row.probe), titles):
            for label, (steps, values) in series.items():
                if series is row.grads:
                    ax.semilogy(steps, values, marker=".", label=label)
                elif series is row.probe:
                    ax.plot(steps, values, ":" if label.endswith("incoherent") else "-", marker="o", label=label)
                else:
                    ax.plot(steps, values, label=label)
            ax.set_title(f"{row.name}: {title}" if series is row.terms else title)
            ax.set_xlabel("step")
            if ax.lines:
                ax.legend(fontsize=7)
        ax_row[3].set_ylim(-0.05, 1.05)
    _save(fig, path)
