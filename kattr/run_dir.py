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

from kattr._atomic import write_text_atomic

__all__ = ["RunDir", "load_run", "write_json"]


def write_json(data, path: str | os.PathLike) -> None:
    """Writes JSON atomically (see `kattr._atomic.atomic_path`)."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=_to_builtin))


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
    """Loads `(config, model, thresholds)` of a finished run (model loaded in safe mode).

    Thresholds are checked before the model loads: each must lie in (0, 1) and name an
    attribute of the run's taxonomy, else a `ValueError` names `thresholds.json` and the
    attribute. The custom layers are registered by `import kattr` (`kattr._registration`).
    """
    import keras

    from kattr.calibration import load_thresholds
    from kattr.config import load_config
    from kattr.postprocess import thresholds_for

    run = RunDir(root)
    run.check_trained()
    config = load_config(run.config, _legacy_overrides(run.config))
    saved = load_thresholds(run.thresholds) if run.thresholds.exists() else None
    try:
        thresholds = thresholds_for(config.taxonomy, saved, default=config.train.threshold)
    except ValueError as error:
        raise ValueError(f"{run.thresholds}: {error}") from error
    model = keras.saving.load_model(run.model, compile=compile, safe_mode=True)
    return config, model, thresholds


def _legacy_overrides(config_path: Path) -> list[str]:
    """Runs saved before `taxonomy.category_output` existed trained no product-type output;
    their config lacks the key, so it loads switched off (saved configs always hold it now)."""
    import yaml

    data = yaml.safe_load(Path(config_path).read_text()) or {}
    taxonomy = data.get("taxonomy") if isinstance(data, dict) else None
    if isinstance(taxonomy, dict) and "category_output" not in taxonomy:
        return ["taxonomy.category_output=null"]
    return []
