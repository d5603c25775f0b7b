"""A run's learning curve as SVG, written without matplotlib.

Every ``kgrec train`` draws one; importing and rendering with matplotlib costs ~1 s, more than
a whole MKR epoch on Last.FM, while this writer takes about a millisecond. Browsers, Jupyter
(``IPython.display.SVG``) and image viewers show the file; ``kgrec plot curve RUN`` draws the
same figure as a PNG with matplotlib.
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Any

from kgrec.utils.io import atomic_write_text

__all__ = ["learning_curve_svg", "nice_ticks", "valid_keys"]

# matplotlib's tab10, so the SVG and the PNG look alike
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
_W, _H = 1000, 400
_PANEL = (70, 60, 400, 270)  # left, top, width, height of the first panel; the second at +490


def nice_ticks(lo: float, hi: float, n: int = 5, *, integer: bool = False) -> list[float]:
    """About ``n`` round tick values (1, 2, 2.5 or 5 times a power of ten) covering
    ``[lo, hi]``; ``integer``: whole-number steps (1, 2 or 5 times a power of ten)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:  # one value: a small window around it
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(n - 1, 1)
    if integer:
        raw = max(raw, 1.0)
    mag = 10.0 ** math.floor(math.log10(raw))
    mults = (1, 2, 5, 10) if integer else (1, 2, 2.5, 5, 10)
    step = next(m * mag for m in mults if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    t = first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(t, 12))
    return ticks


def _fmt(x: float) -> str:
    return f"{x:.4g}"


class _Panel:
    """One axes box: data-to-pixel mapping, grid, ticks, series and legend."""

    def __init__(self, left: float, xs: list[float], ys: list[float], xlabel: str,
                 ylabel: str):
        # x is the epoch: whole-number ticks
        self.left, self.top, self.w, self.h = left, _PANEL[1], _PANEL[2], _PANEL[3]
        finite = [y for y in ys if y is not None and math.isfinite(y)]
        self.xt = nice_ticks(min(xs, default=0), max(xs, default=1), 6, integer=True)
        self.yt = nice_ticks(min(finite, default=0), max(finite, default=1), 5)
        self.x0, self.x1 = self.xt[0], self.xt[-1]
        self.y0, self.y1 = self.yt[0], self.yt[-1]
        self.parts: list[str] = []
        self.legend: list[tuple[str, str, str]] = []  # (label, colour, kind)
        self._axes(xlabel, ylabel)

    def px(self, x: float) -> float:
        return self.left + (x - self.x0) / ((self.x1 - self.x0) or 1) * self.w

    def py(self, y: float) -> float:
        return self.top + self.h - (y - self.y0) / ((self.y1 - self.y0) or 1) * self.h

    def _axes(self, xlabel: str, ylabel: str) -> None:
        p, b = self.parts, self.top + self.h
        for x in self.xt:
            X = self.px(x)
            p.append(f'<line x1="{X:.1f}" y1="{self.top}" x2="{X:.1f}" y2="{b}" '
                     'stroke="#ddd"/>')
            p.append(f'<text x="{X:.1f}" y="{b + 16}" text-anchor="middle">{_fmt(x)}</text>')
        for y in self.yt:
            Y = self.py(y)
            p.append(f'<line x1="{self.left}" y1="{Y:.1f}" x2="{self.left + self.w}" '
                     f'y2="{Y:.1f}" stroke="#ddd"/>')
            p.append(f'<text x="{self.left - 6}" y="{Y + 4:.1f}" text-anchor="end">'
                     f'{_fmt(y)}</text>')
        p.append(f'<rect x="{self.left}" y="{self.top}" width="{self.w}" height="{self.h}" '
                 'fill="none" stroke="#333"/>')
        p.append(f'<text x="{self.left + self.w / 2}" y="{b + 36}" text-anchor="middle">'
                 f'{escape(xlabel)}</text>')
        if ylabel:
            cy = self.top + self.h / 2
            p.append(f'<text x="{self.left - 50}" y="{cy}" text-anchor="middle" '
                     f'transform="rotate(-90 {self.left - 50} {cy})">{escape(ylabel)}</text>')

    def line(self, xs: list[float], ys: list[float | None], label: str, color: str) -> None:
        pts = [(self.px(x), self.py(y)) for x, y in zip(xs, ys, strict=True)
               if y is not None and math.isfinite(y)]
        if not pts:
            return
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        self.parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" '
                          'stroke-width="1.8"/>')
        self.parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>'
                       for x, y in pts]
        self.legend.append((label, color, "line"))

    def vline(self, x: float, label: str) -> None:
        X = self.px(x)
        self.parts.append(f'<line x1="{X:.1f}" y1="{self.top}" x2="{X:.1f}" '
                          f'y2="{self.top + self.h}" stroke="grey" stroke-dasharray="6,4"/>')
        self.legend.append((label, "grey", "dash"))

    def point(self, x: float, y: float, label: str, color: str) -> None:
        if not (math.isfinite(x) and math.isfinite(y)):
            return
        self.parts.append(f'<circle cx="{self.px(x):.1f}" cy="{self.py(y):.1f}" r="5" '
                          f'fill="{color}"/>')
        self.legend.append((label, color, "dot"))

    def render(self, corner: str = "top-right") -> list[str]:
        """The panel's SVG elements, legend in ``corner`` (``top-right``/``bottom-right``:
        where falling losses and rising validation metrics leave room)."""
        out = list(self.parts)
        if self.legend:
            x = self.left + self.w - 200
            y = (self.top + 10 if corner == "top-right"
                 else self.top + self.h - 18 * len(self.legend) - 8)
            out.append(f'<rect x="{x - 4}" y="{y - 6}" width="190" '
                       f'height="{18 * len(self.legend) + 4}" fill="white" opacity="0.85" '
                       'stroke="#ccc"/>')
            for i, (label, color, kind) in enumerate(self.legend):
                yy = y + 18 * i + 5
                if kind == "dot":
                    out.append(f'<circle cx="{x + 10}" cy="{yy}" r="4" fill="{color}"/>')
                else:
                    dash = ' stroke-dasharray="6,4"' if kind == "dash" else ""
                    out.append(f'<line x1="{x}" y1="{yy}" x2="{x + 20}" y2="{yy}" '
                               f'stroke="{color}" stroke-width="1.8"{dash}/>')
                out.append(f'<text x="{x + 26}" y="{yy + 4}">{escape(label)}</text>')
        return out


def valid_keys(hist: list[dict[str, Any]]) -> list[str]:
    """The validation metrics a learning curve shows: AUC and ACC, or HR and NDCG at the
    smallest cut-off under a ranking protocol."""
    first = hist[0]["valid"] if hist else {}
    keys = [k for k in ("auc", "acc") if k in first]
    if not keys:  # a ranking protocol: HR and NDCG at the smallest cut-off
        ks = sorted(int(k.split("@")[1]) for k in first if k.startswith("ndcg@"))
        keys = [f"hr@{ks[0]}", f"ndcg@{ks[0]}"] if ks else []
    return keys


def learning_curve_svg(metrics: dict[str, Any], path: str | Path) -> Path:
    """Training losses per task (left) and the validation metrics per epoch with the best
    epoch and its test figure marked (right), from a run's ``metrics.json`` record."""
    hist = metrics.get("history") or []
    tasks = sorted({k for h in hist for k in h.get("losses", {})})
    loss_pts = [(h["epoch"], h["losses"][t]) for t in tasks for h in hist
                if t in h.get("losses", {})]
    left = _Panel(_PANEL[0], [e for e, _ in loss_pts] or [0, 1], [y for _, y in loss_pts],
                  "epoch", "training loss")
    for i, t in enumerate(tasks):
        pts = [(h["epoch"], h["losses"][t]) for h in hist if t in h.get("losses", {})]
        left.line([e for e, _ in pts], [y for _, y in pts], f"{t} loss",
                  _COLORS[i % len(_COLORS)])
    keys = valid_keys(hist)
    epochs = [h["epoch"] for h in hist]
    best = metrics.get("best_epoch")
    test = metrics.get("test") or {}
    vals = [h["valid"].get(k) for k in keys for h in hist]
    if keys and keys[0] in test:
        vals.append(test[keys[0]])
    right = _Panel(_PANEL[0] + 490, epochs or [0, 1], vals, "epoch", "")
    for i, k in enumerate(keys):
        right.line(epochs, [h["valid"].get(k) for h in hist], f"valid {k}",
                   _COLORS[i % len(_COLORS)])
    if best is not None and best >= 0:
        right.vline(best, f"best epoch {best}")
        if keys and keys[0] in test:
            right.point(best, test[keys[0]], f"test {keys[0]} {test[keys[0]]:.4f}", "red")
    title = (f"{metrics.get('model')} on {metrics.get('dataset')} "
             f"(seed {metrics.get('seed')})")
    svg = "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" font-family="DejaVu Sans, Arial, sans-serif" '
        'font-size="12">',
        f'<rect width="{_W}" height="{_H}" fill="white"/>',
        f'<text x="{_W / 2}" y="28" text-anchor="middle" font-size="15">{escape(title)}</text>',
        *left.render("top-right"), *right.render("bottom-right"), "</svg>", ""])
    path = Path(path)
    atomic_write_text(path, svg)
    return path
