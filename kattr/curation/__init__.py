"""Data curation for real catalogs: validate, de-duplicate, merge, prune and split.

Example:
    >>> from kattr.curation import curate
    >>> result = curate(load_config("configs/fashion-products.yaml"), "work/curated")
    >>> result.split_sizes
    {'train': 6300, 'val': 1350, 'test': 1350}
"""

from kattr.curation.curate import CurationResult, curate
from kattr.curation.errors import CurationError
from kattr.curation.splitting import SPLITS

__all__ = ["SPLITS", "CurationError", "CurationResult", "curate"]
