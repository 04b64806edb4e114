"""kattr: multi-task visual attribute extraction for e-commerce catalogs.

The public API is re-exported here and imported lazily (TensorFlow loads on first use). The
custom Keras objects register themselves as soon as Keras is imported (`kattr._registration`),
so `keras.saving.load_model(path, safe_mode=True)` works after a plain `import kattr`.

Example:
    >>> import kattr
    >>> config = kattr.load_config("configs/fashion-products.yaml", ["train.epochs=3"])
    >>> result = kattr.train(config, "runs/fashion")
"""

from importlib import import_module

from kattr import _registration

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "kattr.config",
    "load_config": "kattr.config",
    "encode_labels": "kattr.labels",
    "read_manifest": "kattr.labels",
    "load_catalog": "kattr.catalog",
    "make_dataset": "kattr.pipeline",
    "generate_catalog": "kattr.synth",
    "validate_catalog": "kattr.validate",
    "curate": "kattr.curation",
    "build_model": "kattr.model",
    "embedding_model": "kattr.model",
    "MaskedBinaryCrossentropy": "kattr.losses",
    "evaluation_report": "kattr.metrics",
    "decide": "kattr.postprocess",
    "calibrate_thresholds": "kattr.calibration",
    "train": "kattr.training",
    "evaluate_run": "kattr.evaluation",
    "load_run": "kattr.run_dir",
    "export_run": "kattr.export",
    "serve": "kattr.server",
    "PredictClient": "kattr.client",
    "Scorer": "kattr.apps",
    "enrich_manifest": "kattr.apps",
    "audit_manifest": "kattr.apps",
    "select_manifest": "kattr.apps",
    "index_manifest": "kattr.apps",
    "similar": "kattr.apps",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kattr' has no attribute {name!r}")


_registration.install()
