"""What a server says it serves (version, signatures) and the checks clients make against it.

A run against TF Serving or kattr-serve asks once which version is served (`GetModelMetadata`,
REST ``GET /v1/models/<name>/metadata``), pins every later request to that version, and checks
that the value names it was given (`--values-from`'s `kattr.json`) match the served model's
`<attr>_scores` outputs. A version that stops being served mid-run, or an answer from another
version, is a `ModelVersionError`: a run is answered by one version or refused.

Example:
    >>> with urlopen(f"{url}/v1/models/shirts/metadata") as response:
    ...     served = ServedModel.from_metadata_json(json.load(response))
    >>> served.version, served.score_widths()["colour"]
    (3, 12)
    >>> check_value_names({"colour": ["red"] * 11}, {"colour": 12}, "kattr.json", "version 3")
    Traceback (most recent call last):
    ValueError: the value names of kattr.json do not match version 3: attribute 'colour':
    version 3 has 12 values, kattr.json has 11. Point --values-from at the kattr.json of ...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import grpc
from google.protobuf import json_format
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from kattr.server.errors import ServingError
from kattr.serving_contract import DEFAULT_SIGNATURE, attribute_of_scores_output, scores_output

__all__ = ["ModelVersionError", "ServedModel", "check_value_names"]

SIGNATURE_DEF_FIELD = "signature_def"


class ModelVersionError(ServingError):
    """A run pinned to one model version met another: refused rather than mixing versions.

    Raised when the pinned version is no longer served (a newer one replaced it) or when an
    answer names another version. Its code is ABORTED: rerun to score everything with one
    version.

    Args:
        message: what happened and what to do.
        pinned: the version the run was pinned to.
        answered: the version that answered or is served now, when known.
    """

    def __init__(self, message: str, pinned: int | None = None, answered: int | None = None):
        super().__init__(grpc.StatusCode.ABORTED, message)
        self.pinned = pinned
        self.answered = answered


@dataclass(frozen=True)
class ServedModel:
    """One served model version and its signature defs, as the server's metadata gives them.

    Args:
        name: the model name.
        version: the version the metadata describes (the latest when none was asked for).
        signature_defs: signature name -> `SignatureDef` proto.
    """

    name: str
    version: int
    signature_defs: dict[str, meta_graph_pb2.SignatureDef] = field(default_factory=dict)

    @classmethod
    def from_metadata_response(
        cls, response: get_model_metadata_pb2.GetModelMetadataResponse
    ) -> ServedModel:
        """From a gRPC `GetModelMetadataResponse` (its packed `signature_def` field)."""
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        if SIGNATURE_DEF_FIELD in response.metadata:
            response.metadata[SIGNATURE_DEF_FIELD].Unpack(signature_map)
        if not response.model_spec.HasField("version"):
            raise ServingError(
                grpc.StatusCode.INTERNAL,
                f"model {response.model_spec.name!r}: the metadata names no version",
            )
        return cls(
            response.model_spec.name, int(response.model_spec.version.value),
            dict(signature_map.signature_def),
        )

    @classmethod
    def from_metadata_json(cls, document: Mapping) -> ServedModel:
        """From TF Serving's REST metadata body (``{"model_spec": ..., "metadata": ...}``)."""
        try:
            spec = document["model_spec"]
            version = int(spec["version"])  # an int64: JSON prints it as a string
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            json_format.ParseDict(
                document.get("metadata", {}).get(SIGNATURE_DEF_FIELD, {}), signature_map,
                ignore_unknown_fields=True,
            )
        except (KeyError, TypeError, ValueError, json_format.ParseError) as error:
            raise ServingError(
                grpc.StatusCode.INTERNAL,
                f"unexpected model metadata ({type(error).__name__}: {error}). "
                f"Received: {str(document)[:300]}",
            ) from None
        return cls(str(spec.get("name", "")), version, dict(signature_map.signature_def))

    def score_widths(self, signature_name: str = DEFAULT_SIGNATURE) -> dict[str, int | None]:
        """Attribute -> number of values of its `<attr>_scores` output (None: not in the shape).

        Raises:
            ValueError: the served model has no such signature.
        """
        key = signature_name or DEFAULT_SIGNATURE
        if key not in self.signature_defs:
            raise ValueError(
                f"model {self.name!r} version {self.version}: no signature {key!r}. "
                f"Served: {sorted(self.signature_defs)}"
            )
        widths: dict[str, int | None] = {}
        for output, info in self.signature_defs[key].outputs.items():
            attribute = attribute_of_scores_output(output)
            if attribute is None:
                continue
            dims = [dim.size for dim in info.tensor_shape.dim]
            known = not info.tensor_shape.unknown_rank and dims and dims[-1] >= 0
            widths[attribute] = int(dims[-1]) if known else None
        return widths


def check_value_names(
    value_names: Mapping[str, Sequence[str]],
    widths: Mapping[str, int | None],
    names_source: str = "--values-from",
    served: str = "the served model",
) -> None:
    """Checks value names against the served `<attr>_scores` outputs, attribute by attribute.

    Every attribute of `value_names` needs an output whose width (when known) is its number of
    values, and every `<attr>_scores` output needs value names: otherwise scores would be named
    after another export's values.

    Args:
        value_names: attribute -> value names (from the `kattr.json` given with --values-from).
        widths: attribute -> width of its served scores output (None where unknown), e.g.
            `ServedModel.score_widths()` or the widths of a response.
        names_source: where the names come from, named in the error.
        served: what the widths describe, named in the error.

    Raises:
        ValueError: naming each mismatched attribute with both counts.
    """
    problems = []
    for attribute, names in value_names.items():
        if attribute not in widths:
            problems.append(
                f"attribute {attribute!r}: {names_source} has {len(names)} values, "
                f"{served} has no {scores_output(attribute)} output"
            )
        elif widths[attribute] is not None and widths[attribute] != len(names):
            problems.append(
                f"attribute {attribute!r}: {served} has {widths[attribute]} values, "
                f"{names_source} has {len(names)}"
            )
    for attribute in widths:
        if attribute not in value_names:
            width = widths[attribute]
            problems.append(
                f"attribute {attribute!r}: {served} has {scores_output(attribute)}"
                + ("" if width is None else f" ({width} values)")
                + f", {names_source} has no such attribute"
            )
    if problems:
        raise ValueError(
            f"the value names of {names_source} do not match {served}: " + "; ".join(problems)
            + ". Point --values-from at the kattr.json of the export being served"
        )
