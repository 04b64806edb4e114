"""`import kattr` alone is enough to load a saved kattr model in Keras safe mode."""

import subprocess
import sys

import pytest
from test_model import tiny_config

from kattr.model import build_model

# Each line runs in a fresh interpreter: the import order decides when registration happens.
IMPORT_ORDERS = {
    "kattr_then_keras": "import kattr, keras",
    "keras_then_kattr": "import keras, kattr",
    "kattr_then_a_tensorflow_module": "import kattr, kattr.postprocess, keras",
}


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("registration") / "model.keras"
    build_model(tiny_config(size=32)).save(path)
    return path


@pytest.mark.parametrize("imports", IMPORT_ORDERS.values(), ids=IMPORT_ORDERS.keys())
def test_import_kattr_registers_the_custom_objects_for_safe_loading(saved_model, imports):
    script = (
        f"{imports}\n"
        f"model = keras.saving.load_model({str(saved_model)!r}, safe_mode=True)\n"
        "print(sorted(type(layer).__name__ for layer in model.layers))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "TransformerBlock" in completed.stdout
    assert "GroupedBranches" in completed.stdout


def test_import_kattr_stays_free_of_tensorflow():
    script = "import sys, kattr; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert completed.stdout.split() == ["False", "False"], completed.stderr[-2000:]
