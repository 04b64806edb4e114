"""Catalog applications measured on a held-out split: enrichment, label audit, visual search.

Given a run trained on the config's catalog, the split's images (test by default: the model
never trained on them) are scored once with `kattr.apps.Scorer`, and the same scores serve
three measures:

1. Enrichment precision on cells blanked on purpose: a seeded share (`--blank`, 20%) of each
   attribute's labelled, applicable cells is blanked in a copy of the manifest, `enrich` fills
   what it can, and each filled cell is compared with the removed value (exact match; for
   multi-label attributes the filled set must equal the catalog's set). Coverage = filled /
   blanked.
2. Audit precision@100 on labels corrupted on purpose: a seeded share (`--corrupt`, 10%) of
   the labelled cells of exclusive attributes gets another valid value of the attribute, then
   `audit` ranks suspects. precision@k = share of the first k queue entries (exclusive
   attributes; all of them when the queue is shorter, column `top`) that are corrupted cells,
   recall@k = share of the corrupted cells found there; per attribute, the attribute's own
   queue. The corruption rate is the precision of a random
   queue. The catalog's own errors count against precision.
3. Visual-search recall@10 for augmented copies: an index of the split's images
   (`build_index`), queried with augmented copies (JPEG quality 60, central 90% crop,
   horizontal flip) of a seeded sample of `--search-queries` of them; recall@10 = the original
   is among the 10 nearest, rank-1 = it is the nearest. Once with the default appearance
   weight, once with `appearance_weight=0` (model embedding only).

Typical usage (the manifest is prepared first when missing; `--limit` for a quick run):
    .venv/bin/python benchmarks/catalog_quality.py --run runs/fashion \
        --output /tmp/catalog-quality.json
    .venv/bin/python benchmarks/catalog_quality.py --run /tmp/demo_run/run \
        --config /tmp/demo_run/run/config.yaml --split val --limit 60 --search-queries 20
"""

from __future__ import annotations

import argparse
import io
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
AUGMENTATIONS = ("jpeg60", "crop90", "flip")


def _cells(frame: pd.DataFrame, taxonomy, attribute) -> tuple[np.ndarray, np.ndarray]:
    """Value sets [rows, values] and the rows holding a known, applicable label."""
    from kattr.apps._cells import applicable_rows, catalog_sets

    sets, known = catalog_sets(frame, attribute, taxonomy.separator)
    return sets, np.flatnonzero(known & applicable_rows(frame, taxonomy, attribute))


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def enrichment_precision(frame, scores, share: float, rng, min_score=None) -> dict:
    """Blank `share` of each attribute's labelled cells, enrich, compare with the truth."""
    from kattr.apps import enrich
    from kattr.apps.enrich import MODEL

    taxonomy = scores.taxonomy
    blanked, truth = frame.copy(), {}
    for attribute in taxonomy.attributes:
        sets, labelled = _cells(frame, taxonomy, attribute)
        rows = np.sort(rng.choice(labelled, round(share * len(labelled)), replace=False))
        blanked.loc[rows, attribute.source_column] = ""
        truth[attribute.name] = (rows, sets[rows])
    enriched = enrich(blanked, scores, min_score).frame
    table, totals = {}, np.zeros(3, int)
    for attribute in taxonomy.attributes:
        rows, true_sets = truth[attribute.name]
        filled = enriched[f"{attribute.name}_source"].to_numpy()[rows] == MODEL
        sets, _ = _cells(enriched, taxonomy, attribute)
        correct = int((sets[rows][filled] == true_sets[filled]).all(axis=1).sum())
        counts = np.array([len(rows), int(filled.sum()), correct])
        totals += counts
        table[attribute.name] = _enrich_row(*counts)
    table["all"] = _enrich_row(*totals)
    return table


def _enrich_row(blanked: int, filled: int, correct: int) -> dict:
    return {"blanked": int(blanked), "filled": int(filled), "correct": int(correct),
            "precision": _ratio(correct, filled), "coverage": _ratio(filled, blanked)}


def audit_precision(frame, scores, share: float, rng, k: int, views=(), min_score=None) -> dict:
    """Corrupt `share` of the exclusive attributes' labelled cells, audit, score the top k."""
    from kattr.apps import audit

    taxonomy = scores.taxonomy
    corrupted, wrong, labelled_counts = frame.copy(), set(), {}
    exclusive = [a for a in taxonomy.attributes if a.exclusive and len(a.values) > 1]
    for attribute in exclusive:
        sets, labelled = _cells(frame, taxonomy, attribute)
        labelled = labelled[sets[labelled].sum(axis=1) == 1]
        labelled_counts[attribute.name] = len(labelled)
        for row in rng.choice(labelled, round(share * len(labelled)), replace=False):
            others = [v for j, v in enumerate(attribute.values) if not sets[row, j]]
            corrupted.loc[row, attribute.source_column] = str(rng.choice(others))
            wrong.add((int(row) + 1, attribute.name))  # the queue's rows are 1-based
    queue = audit(corrupted, scores, min_score=min_score, views=views).queue
    queue = queue[queue["attribute"].isin(labelled_counts)]
    pairs = zip(queue["row"], queue["attribute"], strict=True)
    hit = np.array([pair in wrong for pair in pairs], dtype=bool)
    table = {}
    for name in [*labelled_counts, "all"]:
        mine = hit if name == "all" else hit[(queue["attribute"] == name).to_numpy()]
        cells = sum(labelled_counts.values()) if name == "all" else labelled_counts[name]
        bad = len(wrong) if name == "all" else sum(a == name for _, a in wrong)
        top = mine[:k]
        table[name] = {
            "labelled": int(cells), "corrupted": int(bad),
            "corruption_rate": _ratio(bad, cells), "queue": len(mine), "top": len(top),
            f"precision@{k}": _ratio(int(top.sum()), len(top)),
            f"recall@{k}": _ratio(int(top.sum()), bad),
        }
    return table


def augment(data: bytes, name: str) -> bytes:
    """An augmented copy of an encoded image: `jpeg60`, `crop90` or `flip`."""
    from PIL import Image

    from kattr.apps.scoring import view_bytes

    if name == "crop90":
        return view_bytes(data, "crop")  # the central 90% of each side
    if name == "flip":
        return view_bytes(data, "flip")
    buffer = io.BytesIO()
    with Image.open(io.BytesIO(data)) as image:
        image.convert("RGB").save(buffer, format="JPEG", quality=60)
    return buffer.getvalue()


def search_recall(frame, scores, scorer, count: int, rng, k: int = 10, batch: int = 32) -> dict:
    """Index the scored rows, query with augmented copies of `count` of them."""
    from kattr.apps import build_index
    from kattr.apps.scoring import appearance_descriptor
    from kattr.apps.search import DEFAULT_APPEARANCE_WEIGHT

    index = build_index(frame, scores)  # index position i = i-th scored row
    positions = np.sort(rng.choice(len(index), min(count, len(index)), replace=False))
    originals = [Path(index.metadata["_path"].iloc[p]).read_bytes() for p in positions]
    table = {}
    for name in AUGMENTATIONS:
        copies = [augment(data, name) for data in originals]
        embeddings = np.concatenate(
            [scorer.predict(copies[i:i + batch])[1] for i in range(0, len(copies), batch)]
        )
        appearance = np.stack([appearance_descriptor(data) for data in copies])
        for weight in (DEFAULT_APPEARANCE_WEIGHT, 0.0):
            found, _ = index.search(embeddings, appearance, k=k, appearance_weight=weight)
            table[f"{name}, w={weight:g}"] = {
                "queries": len(positions),
                f"recall@{k}": round(float((found == positions[:, None]).any(axis=1).mean()), 4),
                "rank1": round(float((found[:, 0] == positions).mean()), 4),
            }
    return table


def markdown(title: str, table: dict) -> str:
    columns = list(next(iter(table.values())))
    lines = [f"\n{title}\n", "| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1)
             + "|"]
    for name, row in table.items():
        cells = ("–" if row[c] is None else f"{row[c]:.3f}" if isinstance(row[c], float)
                 else str(row[c]) for c in columns)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a kattr run trained on the catalog")
    parser.add_argument("--config", default=str(ROOT / "configs" / "fashion-products.yaml"))
    parser.add_argument("--source", default=str(ROOT.parent / "shared/data/fashion-products"),
                        help="the raw sample, to prepare the manifest when missing")
    parser.add_argument("--split", default="test", help="test, val or train (test: val if empty)")
    parser.add_argument("--limit", type=int, help="a seeded sample of this many split rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--blank", type=float, default=0.2, help="share of cells to blank")
    parser.add_argument("--corrupt", type=float, default=0.1, help="share of cells to corrupt")
    parser.add_argument("--top", type=int, default=100, help="k of the audit's precision@k")
    parser.add_argument("--tta", action="store_true", help="audit with flip and crop views")
    parser.add_argument("--min-score", type=float, help="as kattr-enrich / kattr-audit")
    parser.add_argument("--search-queries", type=int, default=200)
    parser.add_argument("--output", help="JSON file for the tables (written atomically)")
    args = parser.parse_args()

    from kattr.apps import Scorer
    from kattr.apps.scoring import VIEWS
    from kattr.catalog import load_catalog
    from kattr.config import load_config
    from kattr.run_dir import write_json

    started = time.time()
    config = load_config(args.config)
    if not config.manifest_path.exists():  # as benchmarks/real_catalog.py
        from kattr.fashion_products import prepare_fashion_products

        pattern = next(a for a in config.taxonomy.attributes if a.name == "pattern")
        prepare_fashion_products(args.source, config.manifest_path.parent, pattern.applies_to)
    catalog = load_catalog(config)  # the split assignment of training
    split = args.split
    if split == "test" and not (catalog.splits == "test").any():
        split = "val"
    rows = np.flatnonzero(catalog.splits == split)
    if args.limit and args.limit < len(rows):
        rows = np.sort(np.random.default_rng(args.seed).choice(rows, args.limit, replace=False))
    part = catalog.take(rows)
    frame = part.frame.reset_index(drop=True)
    print(f"{len(frame):,} rows of split {split!r} from {config.manifest_path}", flush=True)

    with Scorer.from_run(args.run) as scorer:
        tick = time.time()
        scores = scorer.score_files(part.paths, appearance=True)
        views = [scorer.score_files(part.paths, view=v) for v in VIEWS] if args.tta else []
        scoring_s = time.time() - tick
        print(f"scored in {scoring_s:.1f} s; {len(scores.failures)} image(s) failed", flush=True)
        for line in scores.failure_lines():
            print(f"  {line}")
        result = {
            "run": str(Path(args.run).resolve()), "config": str(Path(args.config).resolve()),
            "split": split, "rows": len(frame), "seed": args.seed,
            "failed_images": len(scores.failures), "scoring_s": round(scoring_s, 1),
            "enrichment": enrichment_precision(
                frame, scores, args.blank, np.random.default_rng(args.seed), args.min_score),
            "audit": audit_precision(
                frame, scores, args.corrupt, np.random.default_rng(args.seed + 1), args.top,
                views, args.min_score),
            "search": search_recall(
                frame, scores, scorer, args.search_queries, np.random.default_rng(args.seed + 2)),
        }
    result["seconds"] = round(time.time() - started, 1)
    print(markdown(f"Enrichment of {args.blank:.0%} blanked cells", result["enrichment"]))
    print(markdown(f"Audit of {args.corrupt:.0%} corrupted cells (exclusive attributes)",
                   result["audit"]))
    print(markdown("Visual search with augmented copies (w = appearance weight)",
                   result["search"]))
    print(f"\ntotal {result['seconds']:.0f} s")
    if args.output:
        write_json(result, args.output)


if __name__ == "__main__":
    main()
