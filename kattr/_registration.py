"""Registers kattr's custom Keras objects as soon as Keras is imported.

`keras.saving.load_model(path, safe_mode=True)` finds custom classes only through Keras'
registry, which `@keras.saving.register_keras_serializable` fills when the defining module
(`kattr.layers`, `kattr.losses`, `kattr.metrics`) is imported. Importing those modules from
`import kattr` would import TensorFlow too (measured: `import kattr` 0.02 s without them,
8-18 s with them on 2 cores), so `import kattr` installs a one-shot import hook instead: when
`keras` finishes importing, the three modules are imported and register themselves. Loading a
model needs Keras, so the classes are always registered before they are looked up.

Example:
    >>> import kattr, keras
    >>> model = keras.saving.load_model("runs/demo/model.keras", safe_mode=True)
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

__all__ = ["install", "register_custom_objects"]

_MODULES = ("kattr.layers", "kattr.losses", "kattr.metrics")


def register_custom_objects() -> None:
    """Imports the modules whose classes are registered for safe loading (needs Keras)."""
    for name in _MODULES:
        importlib.import_module(name)


def install() -> None:
    """Registers now if Keras is loaded, else once `import keras` completes."""
    if "keras" in sys.modules:
        register_custom_objects()
    elif not any(isinstance(finder, _KerasImportHook) for finder in sys.meta_path):
        sys.meta_path.insert(0, _KerasImportHook())


class _KerasImportHook(importlib.abc.MetaPathFinder):
    """Finds `keras` with the other finders and registers kattr's objects after it executes.

    It stays installed until Keras is executed: TensorFlow asks for Keras' spec
    (`importlib.util.find_spec`) before importing it.
    """

    def __init__(self):
        self._finding = False

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras" or self._finding:
            return None
        self._finding = True  # the lookup below asks every finder again, this one included
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._finding = False
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader, self)
        return spec


class _RegisteringLoader(importlib.abc.Loader):
    """Runs the real loader, gives the module its real loader back, then registers."""

    def __init__(self, loader, hook: _KerasImportHook):
        self._loader = loader
        self._hook = hook

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        if self._hook in sys.meta_path:
            sys.meta_path.remove(self._hook)
        module.__loader__ = module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        register_custom_objects()
