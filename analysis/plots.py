"""Figures of the report: rate-distortion curves, learning curves and image grids.

Drawn with matplotlib's object-oriented API on the Agg canvas (no display, no global
pyplot state) and written atomically as PNG. Every figure has a fixed size in inches at
`DPI` dots per inch, so its pixel size is known in advance. Axes are in nats per example.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from datasets.images import tile_grid
from experiment.results import write_atomically
from analysis.summary import Group, RunRecord, curve_label

DPI = 100
RD_PANEL_INCHES = (6.5, 5.5)
CURVE_PANEL_INCHES = (5.0, 3.2)
CURVES = (("loss", "loss (nats per example)"), ("rate", "rate (nats per example)"),
          ("distortion", "distortion (nats per example)"))


def save_figure(figure: Figure, path: Path) -> None:
    write_atomically(path, lambda temporary: figure.savefig(temporary, dpi=DPI, format="png"), suffix=".png")


def _method_colors(names: Sequence[str]) -> dict[str, tuple]:
    palette = colormaps["tab10"] if len(names) <= 10 else colormaps["tab20"]
    return {name: palette(index % palette.N) for index, name in enumerate(names)}


# ---- rate-distortion ------------------------------------------------------------------


def rate_distortion_figure(groups: list[Group]) -> Figure:
    """Per dataset, test distortion against test rate: one line per method (and budget)
    through its β values (mean over seeds, bars ± one standard deviation, β written at
    each point), over grey lines of constant -ELBO = D + R."""
    datasets = list(dict.fromkeys(group.dataset for group in groups))
    width, height = RD_PANEL_INCHES
    figure = Figure(figsize=(width * len(datasets), height), layout="constrained")
    axes = figure.subplots(1, len(datasets), squeeze=False)[0]
    colors = _method_colors(list(dict.fromkeys(group.method for group in groups)))
    for ax, dataset in zip(axes, datasets):
        _rate_distortion_panel(ax, [g for g in groups if g.dataset == dataset], colors)
        ax.set_title(f"{dataset}: test rate-distortion")
    return figure


def _rate_distortion_panel(ax, groups: list[Group], colors: dict) -> None:
    several_budgets = len({(g.epochs, g.train_size) for g in groups}) > 1
    curves: dict[str, list[Group]] = {}
    for group in groups:
        curves.setdefault(curve_label(group, several_budgets), []).append(group)
    markers = "osD^v<>ph*"
    points = np.array([(g.stats("test_rate")[0], g.stats("test_distortion")[0]) for g in groups])
    spans = np.ptp(points, axis=0) + 1e-9
    for index, (label, members) in enumerate(curves.items()):
        members = sorted(members, key=lambda g: math.inf if g.beta is None else g.beta)
        rate = [g.stats("test_rate") for g in members]
        distortion = [g.stats("test_distortion") for g in members]
        color = colors[members[0].method]
        ax.errorbar(
            [r[0] for r in rate], [d[0] for d in distortion],
            xerr=[r[1] or 0.0 for r in rate], yerr=[d[1] or 0.0 for d in distortion],
            color=color, marker=markers[index % len(markers)], markersize=5, linewidth=1.5, capsize=2, label=label,
        )
        labels = _beta_labels([(r[0], d[0]) for r, d in zip(rate, distortion)], [g.beta for g in members], spans)
        for (r, d), label in labels:
            ax.annotate(label, (r, d), textcoords="offset points", xytext=(4, 3), fontsize=7, color=color)
    ax.set_xlabel("rate R (nats per example)")
    ax.set_ylabel("distortion D (nats per example)")
    ax.margins(0.12)
    _constant_elbo_lines(ax)
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="0.6", linestyle=":", linewidth=1))
    labels.append("D + R = -ELBO, constant (value at line)")
    ax.legend(handles, labels, fontsize=8, loc="upper right")
    ax.grid(alpha=0.2)


def _beta_labels(points: list[tuple[float, float]], betas: list, spans: np.ndarray) -> list[tuple[tuple[float, float], str]]:
    """One "β=..." label per point, points closer than 2% of the panel's span (e.g. a
    rate that sits at its floor for every β) sharing one label that lists their βs."""
    labels: list[tuple[tuple[float, float], list[str]]] = []
    for point, beta in zip(points, betas):
        if beta is None:
            continue
        for anchor, names in labels:
            if np.all(np.abs((np.array(point) - np.array(anchor)) / spans) < 0.02):
                names.append(f"{beta:g}")
                break
        else:
            labels.append((point, [f"{beta:g}"]))
    return [(anchor, "β=" + ", ".join(names)) for anchor, names in labels]


def _constant_elbo_lines(ax) -> None:
    """Grey lines D = c - R for round values c in view, each labelled with c where it enters
    the panel from the top or the left."""
    ax.autoscale_view()
    (x_low, x_high), (y_low, y_high) = ax.get_xlim(), ax.get_ylim()
    for c in MaxNLocator(nbins=7).tick_values(x_low + y_low, x_high + y_high):
        x_start = max(x_low, c - y_high)
        x_end = min(x_high, c - y_low)
        if x_end <= x_start:
            continue
        ax.plot([x_start, x_end], [c - x_start, c - x_end], color="0.6", linestyle=":", linewidth=1, zorder=0)
        ax.annotate(f"{c:g}", (x_start, c - x_start), textcoords="offset points", xytext=(2, -9), fontsize=7, color="0.45")
    ax.set_xlim(x_low, x_high)
    ax.set_ylim(y_low, y_high)


# ---- learning curves ------------------------------------------------------------------


def learning_curves_figure(records: list[RunRecord]) -> Figure:
    """Loss, rate and distortion per epoch of every run: one row per dataset, method and
    budget, one colour per β; validation dashed where the run has it."""
    rows: dict[tuple, list[RunRecord]] = {}
    for record in sorted(records, key=lambda r: (str(r.row["dataset"]), r.row["method"], str(r.budget))):
        rows.setdefault((record.row["dataset"], record.row["method"], record.budget), []).append(record)
    width, height = CURVE_PANEL_INCHES
    figure = Figure(figsize=(width * len(CURVES), height * len(rows)), layout="constrained")
    axes = figure.subplots(len(rows), len(CURVES), squeeze=False)
    for row_axes, ((dataset, method, (epochs, train_size)), members) in zip(axes, rows.items()):
        shade = _beta_shades(members)
        for ax, (key, ylabel) in zip(row_axes, CURVES):
            labelled = set()
            for record in members:
                beta = record.row["beta"]
                values = record.results.get(key, [])
                label = None if beta in labelled else _beta_label(beta)
                labelled.add(beta)
                epochs_axis = np.arange(1, len(values) + 1)
                ax.plot(epochs_axis, values, color=shade[beta], linewidth=1.2, label=label)
                validation = record.results.get(f"val_{key}")
                if validation:
                    ax.plot(np.arange(1, len(validation) + 1), validation, color=shade[beta], linewidth=1.0, linestyle="--")
            ax.set_title(f"{dataset}, {method} ({epochs} epochs, {train_size} train): {key}", fontsize=9)
            ax.set_xlabel("epoch")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.2)
        row_axes[0].legend(fontsize=7, title="solid: train, dashed: validation", title_fontsize=7)
    return figure


# ---- Echo's channel health -------------------------------------------------------------

HEALTH_PANELS = (
    ((("echo_saturated", "saturated"), ("echo_at_floor", "at the floor")), "fraction of s(x) units"),
    ((("echo_log_sx", "mean log s(x)"),), "log s(x)"),
    ((("echo_fx_mean", "|mean f(x)|"), ("echo_fx_spread", "spread of f(x)")), "f(x), averaged over units"),
    ((("echo_noise_mean", "|mean ε|"), ("echo_noise_spread", "spread of ε")), "echo noise, averaged over units"),
)
_STYLES = ("-", ":")


def has_channel_health(record: RunRecord) -> bool:
    """Whether a run recorded an Echo channel's health per epoch (`experiment.health`)."""
    return "echo_saturated" in record.results


def channel_health_figure(records: list[RunRecord]) -> Figure:
    """The per-epoch health of every Echo run's channel, measured on training images after
    each epoch: one row per dataset, method and budget, one colour per β; panels: the
    fractions of saturated (zero-gradient) and floored s(x) units, the mean log s(x), the
    mean and spread of f(x) and of the echo noise, and the rate of each latent dimension
    (nats per example; thin lines, one per dimension, for each run)."""
    rows: dict[tuple, list[RunRecord]] = {}
    for record in sorted(filter(has_channel_health, records), key=lambda r: (str(r.row["dataset"]), r.row["method"], str(r.budget))):
        rows.setdefault((record.row["dataset"], record.row["method"], record.budget), []).append(record)
    columns = len(HEALTH_PANELS) + 1
    width, height = CURVE_PANEL_INCHES
    figure = Figure(figsize=(width * columns, height * len(rows)), layout="constrained")
    axes = figure.subplots(len(rows), columns, squeeze=False)
    for row_axes, ((dataset, method, (epochs, train_size)), members) in zip(axes, rows.items()):
        shade = _beta_shades(members)
        for ax, (series, ylabel) in zip(row_axes, HEALTH_PANELS):
            for record in members:
                for (key, what), style in zip(series, _STYLES):
                    values = record.results[key]
                    ax.plot(np.arange(1, len(values) + 1), values, color=shade[record.row["beta"]], linestyle=style,
                            linewidth=1.2, label=f"{what}, {_beta_label(record.row['beta'])}")
            ax.set_ylabel(ylabel)
        ax = row_axes[-1]
        for record in members:
            dims = sorted(key for key in record.results if key.startswith("echo_rate_dim"))
            for key in dims:
                values = record.results[key]
                ax.plot(np.arange(1, len(values) + 1), values, color=shade[record.row["beta"]], linewidth=0.6, alpha=0.7)
        ax.set_ylabel("rate of each dimension (nats per example)")
        for ax, title in zip(row_axes, ("s(x) units", "log s(x)", "f(x)", "noise", "rate per dimension")):
            ax.set_title(f"{dataset}, {method} ({epochs} epochs, {train_size} train): {title}", fontsize=9)
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.2)
        for ax in row_axes[:-1]:
            ax.legend(fontsize=6)
    return figure


def _beta_shades(records: list[RunRecord]) -> dict:
    """One viridis colour per β of the records."""
    betas = sorted({record.row["beta"] for record in records}, key=lambda b: math.inf if b is None else b)
    palette = colormaps["viridis"]
    return {beta: palette(0.85 * index / max(1, len(betas) - 1)) for index, beta in enumerate(betas)}


def _beta_label(beta) -> str:
    return "β from config" if beta is None else f"β={beta:g}"


# ---- image grids ----------------------------------------------------------------------


def image_grid_figure(panels: Sequence[tuple[str, np.ndarray]], title: str, columns: int = 10) -> Figure:
    """One grid of images per panel, stacked, `columns` images a row; images [N, H, W, 1]
    in [0, 1]."""
    rows = [math.ceil(len(images) / columns) for _, images in panels]
    figure = Figure(figsize=(8.0, sum(0.8 * n + 0.5 for n in rows) + 0.4), layout="constrained")
    axes = figure.subplots(len(panels), 1, squeeze=False, height_ratios=rows)[:, 0]
    for ax, (panel_title, images) in zip(axes, panels):
        ax.imshow(tile_grid(np.asarray(images), columns=columns)[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(panel_title, fontsize=9)
        ax.set_axis_off()
    figure.suptitle(title, fontsize=10)
    return figure
