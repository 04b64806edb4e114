"""Values with fewer than `min_count` examples: kept, set to missing, or merged into a fallback.

Counts are labelled examples (rows where the attribute applies and the cell holds the value),
taken after de-duplication. With `fallback`, an attribute's rare values merge into
`rare_fallback[attribute]`; attributes without a fallback entry set their rare values to
missing. A cell left with no value becomes blank (missing).

Pruning never turns a known value into a false negative nor drops one: a multi-label cell that
holds a rare value beside a value that is not rare (``casual|sport``, sport rare) is kept as it
is under `missing`. Removing sport would train it as a negative on an image that has it, and
blanking the cell would lose casual; a manifest cell cannot say "sport unknown" for a value of
the taxonomy. Such cells are counted in `RareValue.kept_cells`. Under `fallback` the rare value
is replaced in place (``casual|other``), which loses nothing.

Example:
    >>> pruned = prune_rare_values(frame, taxonomy, min_count=20, policy="fallback",
    ...                            fallback={"colour": "other"})
    >>> [(r.value, r.count, r.action) for r in pruned.rare_values][:1]
    [('mauve', 3, 'fallback: other')]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kattr.config import TaxonomyConfig, canonical
from kattr.curation.errors import CurationError
from kattr.labels import cell_values, encode_labels

__all__ = [
    "RARE_POLICIES",
    "PrunedValues",
    "RareValue",
    "check_rare_fallback",
    "prune_rare_values",
]

RARE_POLICIES = ("keep", "missing", "fallback")


@dataclass
class RareValue:
    """One rare value and what became of it.

    Attributes:
        attribute: attribute name.
        value: the rare value.
        count: labelled examples before pruning.
        action: `kept`, `missing` or `fallback: <value>`.
        cells: cells changed.
        kept_cells: cells left unchanged under `missing` because they also hold a value that
            is not rare (see the module docstring).
    """

    attribute: str
    value: str
    count: int
    action: str
    cells: int
    kept_cells: int = 0


@dataclass
class PrunedValues:
    """The manifest after pruning and the rare values found (rarest first)."""

    frame: pd.DataFrame
    rare_values: list[RareValue]


def check_rare_fallback(taxonomy: TaxonomyConfig, fallback: dict[str, str]) -> dict[str, str]:
    """Checks `curation.rare_fallback` and returns it with canonical values.

    Raises:
        CurationError: an unknown attribute, or a fallback value not in the attribute's values.
    """
    attributes = {a.name: a for a in taxonomy.declared_attributes}
    checked = {}
    for name, value in fallback.items():
        if name not in attributes:
            raise CurationError(
                f"curation.rare_fallback.{name}: unknown attribute; expected one of "
                f"{list(attributes)}. Received: {name!r}"
            )
        value = canonical(value)
        if value not in attributes[name].values:
            raise CurationError(
                f"curation.rare_fallback.{name}: the fallback must be one of the attribute's "
                f"values {attributes[name].values}. Received: {value!r}"
            )
        checked[name] = value
    return checked


def _replace_values(cell, rare: set[str], replacement: str | None, separator: str) -> str | None:
    values = []
    for value in cell_values(cell, separator):
        value = replacement if value in rare else value
        if value is not None and value not in values:
            values.append(value)
    return separator.join(values) or None


def prune_rare_values(
    frame: pd.DataFrame,
    taxonomy: TaxonomyConfig,
    min_count: int,
    policy: str,
    fallback: dict[str, str],
) -> PrunedValues:
    """Finds values with fewer than `min_count` labelled examples and applies `policy`.

    Args:
        frame: canonical manifest without unknown values (see `clean_labels`); not modified.
        taxonomy: the attributes.
        min_count: values with fewer examples are rare; values with no example are not listed.
        policy: one of `RARE_POLICIES`.
        fallback: attribute -> value rare values merge into under `fallback`.
    """
    if policy not in RARE_POLICIES:
        raise CurationError(
            f"curation.rare_policy must be one of {list(RARE_POLICIES)}. Received: {policy!r}"
        )
    fallback = check_rare_fallback(taxonomy, fallback)
    frame = frame.copy()
    targets = encode_labels(frame, taxonomy, on_unknown="missing").targets
    found = []
    # Not the product type: blanking rare categories would hide other attributes' applicability.
    for attribute in taxonomy.declared_attributes:
        counts = (targets[attribute.name] == 1.0).sum(axis=0)
        target = fallback.get(attribute.name) if policy == "fallback" else None
        rare = {
            value: int(count)
            for value, count in zip(attribute.values, counts, strict=True)
            if 0 < count < min_count and value != target
        }
        if not rare:
            continue
        action = "kept" if policy == "keep" else f"fallback: {target}" if target else "missing"
        column = frame.columns.get_loc(attribute.source_column)
        changed, kept = dict.fromkeys(rare, 0), dict.fromkeys(rare, 0)
        if policy != "keep":
            rare_columns = [attribute.values.index(value) for value in rare]
            for row in np.flatnonzero((targets[attribute.name][:, rare_columns] == 1.0).any(1)):
                cell = frame.iat[row, column]
                values = cell_values(cell, taxonomy.separator)
                counts = kept if target is None and set(values) - set(rare) else changed
                for value in rare:
                    counts[value] += value in values
                if counts is changed:
                    frame.iat[row, column] = _replace_values(
                        cell, set(rare), target, taxonomy.separator
                    )
        found += [
            RareValue(attribute.name, value, count, action, changed[value], kept[value])
            for value, count in rare.items()
        ]
    found.sort(key=lambda r: (r.count, r.attribute, r.value))
    return PrunedValues(frame, found)
