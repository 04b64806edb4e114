"""kattr: multi-task visual attribute extraction for e-commerce catalogs."""

__version__ = "0.1.0"
