"""Catalog applications built on a trained model: enrichment, label audit, annotation queue,
visual search, and a FiftyOne view (`to_fiftyone`). Each works from a manifest and a model
source (`Scorer`: a run directory, an exported model, or a TF Serving / kattr-serve endpoint
over REST or gRPC; or `StoredScores` computed ahead by kattr-batch).

Example:
    >>> from kattr.apps import Scorer, enrich_manifest
    >>> with Scorer.from_run("runs/shirts") as scorer:
    ...     enrich_manifest("catalog.csv", "enriched.csv", scorer).summary["colour"]
    {'blank': 57, 'filled': 49, 'left_blank': 8, 'failed_images': 0}
"""

from kattr.apps.audit import AuditResult, audit, audit_manifest
from kattr.apps.enrich import EnrichResult, enrich, enrich_manifest
from kattr.apps.fiftyone_view import to_fiftyone
from kattr.apps.labelstudio import export_queue
from kattr.apps.labelstudio_review import import_review
from kattr.apps.scoring import CatalogScores, ImageFailure, Scorer, manifest_images
from kattr.apps.search import SimilarityIndex, build_index, index_manifest, similar
from kattr.apps.selection import SelectResult, k_center_greedy, select, select_manifest
from kattr.apps.sources import open_scorer, open_source

__all__ = [
    "AuditResult",
    "CatalogScores",
    "EnrichResult",
    "ImageFailure",
    "Scorer",
    "SelectResult",
    "SimilarityIndex",
    "audit",
    "audit_manifest",
    "build_index",
    "enrich",
    "enrich_manifest",
    "export_queue",
    "import_review",
    "index_manifest",
    "k_center_greedy",
    "manifest_images",
    "open_scorer",
    "open_source",
    "select",
    "select_manifest",
    "similar",
    "to_fiftyone",
]
