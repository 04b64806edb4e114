"""The serving contract's names are spelled in one module, `kattr.serving_contract`."""

import ast
from pathlib import Path

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
