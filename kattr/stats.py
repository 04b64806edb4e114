"""Label statistics per attribute: the three label states and value frequencies.

The states follow the taxonomy exactly because they come from `encode_labels` (values outside
the taxonomy count as missing, as with `on_unknown: missing`): *labelled* rows hold at least one
known value, *missing* rows are blank where the attribute applies, *not applicable* rows are in
a category outside the attribute's `applies_to`.

Example:
    >>> frame = read_manifest(config.manifest_path)
    >>> values = compute_attribute_stats(frame, config.taxonomy)
    >>> states = attribute_state_counts(frame, config.taxonomy)
    >>> print(format_stats(values, states))
    >>> plot_attribute_stats({"catalog": values}, "stats", states={"catalog": states})
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from kattr._atomic import atomic_path
from kattr.config import TaxonomyConfig
from kattr.labels import MISSING, encode_labels

__all__ = [
    "attribute_state_counts",
    "compute_attribute_stats",
    "format_stats",
    "plot_attribute_stats",
]

STATE_COLUMNS = ("labelled", "missing", "not_applicable")
STATE_LABELS = ["labelled", "missing", "not applicable"]


def compute_attribute_stats(frame: pd.DataFrame, taxonomy: TaxonomyConfig) -> pd.DataFrame:
    """How many rows hold each value: one row per (attribute, value), in taxonomy order.

    Values nobody uses are listed with a count of 0; a multi-valued cell counts once per value.

    Returns:
        Columns `attribute`, `value`, `count`.
    """
    encoded = encode_labels(frame, taxonomy, on_unknown="missing")
    rows = []
    for attribute in taxonomy.attributes:
        counts = (encoded.targets[attribute.name] == 1.0).sum(axis=0)
        rows.extend(
            {"attribute": attribute.name, "value": value, "count": int(count)}
            for value, count in zip(attribute.values, counts, strict=True)
        )
    return pd.DataFrame(rows, columns=["attribute", "value", "count"])


def attribute_state_counts(frame: pd.DataFrame, taxonomy: TaxonomyConfig) -> pd.DataFrame:
    """Rows per label state for each attribute.

    Returns:
        Columns `attribute`, `labelled`, `missing`, `not_applicable`; the three counts of an
        attribute add up to the number of rows.
    """
    encoded = encode_labels(frame, taxonomy, on_unknown="missing")
    rows = []
    for attribute in taxonomy.attributes:
        target = encoded.targets[attribute.name]
        missing = np.all(target == MISSING, axis=1)
        labelled = np.any(target == 1.0, axis=1)
        rows.append({
            "attribute": attribute.name,
            "labelled": int(labelled.sum()),
            "missing": int(missing.sum()),
            "not_applicable": int((~missing & ~labelled).sum()),  # all-zero target rows
        })
    return pd.DataFrame(rows, columns=["attribute", *STATE_COLUMNS])


def format_stats(values: pd.DataFrame, states: pd.DataFrame) -> str:
    """A state table for all attributes, then each attribute's values by decreasing count.

    Args:
        values: output of `compute_attribute_stats`.
        states: output of `attribute_state_counts`.
    """
    lines = [states.rename(columns={"not_applicable": "not applicable"}).to_string(index=False)]
    labelled_of = dict(zip(states["attribute"], states["labelled"], strict=True))
    for name, group in values.groupby("attribute", sort=False):
        labelled = labelled_of.get(name, 0)
        table = group.sort_values("count", ascending=False, kind="stable")[["value", "count"]]
        share = table["count"] / labelled if labelled else table["count"] * 0.0
        table = table.assign(share=[f"{s:.1%}" for s in share])
        lines += ["", f"{name} ({labelled} labelled rows; share of labelled rows)"]
        lines += ["  " + line for line in table.to_string(index=False).splitlines()]
    return "\n".join(lines)


def plot_attribute_stats(
    frames: dict[str, pd.DataFrame],
    output_dir: str | os.PathLike,
    states: dict[str, pd.DataFrame] | None = None,
) -> list[Path]:
    """Writes one PNG bar chart per attribute, `<output_dir>/<attribute>.png`.

    Several frames (e.g. before and after curation) are drawn side by side; values are ordered
    by their count in the first frame.

    Args:
        frames: name -> output of `compute_attribute_stats`, e.g. ``{"before": ..., "after": ...}``.
        output_dir: created if needed; existing charts of the same name are replaced.
        states: optional name -> output of `attribute_state_counts` (same names as `frames`),
            drawn as a second panel with labelled / missing / not applicable counts.

    Returns:
        The written files, one per attribute.

    Example:
        >>> plot_attribute_stats({"before": before, "after": after}, "curation/stats")
        [PosixPath('curation/stats/colour.png'), ...]
    """
    if not frames:
        raise ValueError("frames: expected at least one name -> statistics frame. Received: {}")
    for name, frame in frames.items():
        absent = {"attribute", "value", "count"} - set(frame.columns)
        if absent:
            raise ValueError(
                f"frames[{name!r}]: expected the output of compute_attribute_stats with columns "
                f"attribute, value, count. Received columns: {list(frame.columns)}"
            )
    if states is not None and set(states) != set(frames):
        raise ValueError(
            f"states: expected the same names as frames {list(frames)}. Received: {list(states)}"
        )
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    attributes = list(dict.fromkeys(a for f in frames.values() for a in f["attribute"]))
    return [
        _plot_attribute(attribute, frames, states, output_dir / f"{attribute}.png")
        for attribute in attributes
    ]


def _plot_attribute(
    attribute: str,
    frames: dict[str, pd.DataFrame],
    states: dict[str, pd.DataFrame] | None,
    path: Path,
) -> Path:
    counts = {
        name: frame[frame["attribute"] == attribute].groupby("value", sort=False)["count"].sum()
        for name, frame in frames.items()
    }
    first = next(iter(counts.values()))
    order = list(first.sort_values(ascending=False, kind="stable").index)
    order += [v for series in counts.values() for v in series.index if v not in order]
    # Figure without pyplot renders with Agg and keeps no global state (safe in threads).
    figure = Figure(figsize=(10 if states else 8, max(2.5, 0.9 + 0.28 * len(order) * len(frames))))
    if states:
        value_axes, state_axes = figure.subplots(1, 2, width_ratios=[3, 1])
    else:
        value_axes, state_axes = figure.subplots(), None
    _grouped_bars(value_axes, order, {n: s.reindex(order, fill_value=0) for n, s in counts.items()})
    value_axes.set_xlabel("rows with the value")
    value_axes.set_title(f"{attribute}: values")
    if state_axes is not None:
        state_counts = {}
        for name, frame in states.items():
            row = frame[frame["attribute"] == attribute]
            values = row.iloc[0][list(STATE_COLUMNS)] if len(row) else [0] * len(STATE_COLUMNS)
            state_counts[name] = pd.Series(list(values), index=STATE_LABELS)
        _grouped_bars(state_axes, STATE_LABELS, state_counts)
        state_axes.set_title("label states")
    if len(frames) > 1:
        value_axes.legend()
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return path


def _grouped_bars(axes, labels: list[str], series: dict[str, pd.Series]) -> None:
    """Horizontal bars, one group per label and one bar per series, first label on top."""
    height = 0.8 / len(series)
    positions = np.arange(len(labels))
    for k, (name, values) in enumerate(series.items()):
        offset = (k - (len(series) - 1) / 2) * height
        bars = axes.barh(positions + offset, [int(values[label]) for label in labels], height,
                         label=name)
        axes.bar_label(bars, fontsize=7, padding=2)
    axes.set_yticks(positions, labels)
    axes.invert_yaxis()
    axes.margins(x=0.15)
