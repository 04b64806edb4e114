"""The serving contract's names are spelled in one module, `kattr.serving_contract`."""

import ast
from pathlib import Path

import pytest

import kattr.serving_contract as contract

PACKAGE = Path(contract.__file__).parent
# String constants that only the contract module may spell (docstrings and comments excluded).
CONTRACT_STRINGS = {
    "image_bytes", "serving_default", "kattr.json", "tf_serving_warmup_requests", "_scores",
    "_labels",
}


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _contract_strings_outside_the_contract() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == Path(contract.__file__):
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and id(node) not in docstrings and node.value in CONTRACT_STRINGS):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.value!r}")
    return found


def test_contract_names_are_spelled_only_in_the_contract_module():
    assert _contract_strings_outside_the_contract() == []


def test_output_names_follow_the_documented_pattern():
    assert contract.scores_output("colour") == "colour_scores"
    assert contract.labels_output("colour") == "colour_labels"
    assert contract.attribute_of_scores_output("neck_type_scores") == "neck_type"
    assert contract.attribute_of_scores_output("embedding") is None
    assert str(contract.METADATA_PATH) == "assets.extra/kattr.json"


def _modules_naming(name: str) -> set[str]:
    found = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        if any(isinstance(node, ast.Name | ast.alias) and name in (
                getattr(node, "id", None), getattr(node, "name", None)) for node in ast.walk(tree)):
            found.add(str(path.relative_to(PACKAGE.parent)))
    return found


def test_kattr_json_has_one_writer_and_one_reader():
    assert _modules_naming("METADATA_PATH") == {
        "kattr/serving_contract.py",  # spells it
        "kattr/export.py",  # writes it
        "kattr/client/model_files.py",  # reads it: `read_metadata`
        "kattr/apps/scoring.py",  # names it in error messages
    }


def test_the_reader_names_a_bad_file(tmp_path):
    from kattr.client.model_files import read_metadata, read_value_names

    version = tmp_path / "shirts" / "3"
    (version / "assets.extra").mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"")
    metadata = version / "assets.extra" / "kattr.json"
    metadata.write_text('{"taxonomy": {"attributes": [{"name": "colour", "values": ["red"]}]}}')
    assert read_metadata(tmp_path / "shirts") == read_metadata(metadata)
    assert read_value_names(version) == {"colour": ["red"]}
    metadata.write_text("{not json")
    with pytest.raises(ValueError, match=r"kattr\.json: not valid JSON"):
        read_metadata(version)
    metadata.unlink()
    with pytest.raises(FileNotFoundError, match="no kattr.json"):
        read_metadata(version)


def test_the_exporter_imports_neither_the_client_nor_the_dev_server():
    tree = ast.parse((PACKAGE / "export.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
    assert not {name for name in imported if name and name.startswith(
        ("kattr.client", "kattr.server", "kattr.apps"))}, sorted(imported)
