"""Layout of a training run directory and loading a trained run back.

    RUN_DIR/
      config.yaml        resolved config (data paths made absolute)
      taxonomy.yaml      the taxonomy alone, for consumers that only need label names
      model.keras        best model by validation average accuracy
      thresholds.json    decision thresholds per attribute (0.5 until calibrated)
      history.csv        per-epoch metrics;  logs/  TensorBoard;  backup/  resume state
      sampling.json      what down-/over-sampling did;  summary.json  training summary
      eval/              evaluation report on the validation split

Example:
    >>> run = RunDir("runs/demo")
    >>> config, model, thresholds = load_run("runs/demo")
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunDir", "load_run", "write_json"]


def write_json(data, path: str | os.PathLike) -> None:
    """Writes JSON atomically (temp file, then rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_to_builtin))
    os.replace(tmp, path)


def _to_builtin(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


@dataclass(frozen=True)
class RunDir:
    """Paths inside a run directory."""

    root: Path

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root))

    config = property(lambda self: self.root / "config.yaml")
    taxonomy = property(lambda self: self.root / "taxonomy.yaml")
    model = property(lambda self: self.root / "model.keras")
    thresholds = property(lambda self: self.root / "thresholds.json")
    history = property(lambda self: self.root / "history.csv")
    logs = property(lambda self: self.root / "logs")
    backup = property(lambda self: self.root / "backup")
    sampling = property(lambda self: self.root / "sampling.json")
    summary = property(lambda self: self.root / "summary.json")
    eval = property(lambda self: self.root / "eval")

    def check_trained(self) -> None:
        """Raises a clear error when the directory holds no finished training run."""
        for path in (self.config, self.model):
            if not path.exists():
                raise FileNotFoundError(
                    f"{self.root}: not a finished kattr run ({path.name} is missing); "
                    "train one with kattr-train --config CFG --output RUN_DIR"
                )


def load_run(root: str | os.PathLike, compile: bool = False):
    """Loads `(config, model, thresholds)` of a finished run (model loaded in safe mode)."""
    import keras

    import kattr.layers  # noqa: F401  (registers the custom layers for safe loading)
    import kattr.losses  # noqa: F401
    import kattr.metrics  # noqa: F401
    from kattr.config import load_config
    from kattr.postprocess import thresholds_for

    run = RunDir(root)
    run.check_trained()
    config = load_config(run.config)
    model = keras.saving.load_model(run.model, compile=compile, safe_mode=True)
    saved = json.loads(run.thresholds.read_text()) if run.thresholds.exists() else None
    thresholds = thresholds_for(config.taxonomy, saved, default=config.train.threshold)
    return config, model, thresholds
