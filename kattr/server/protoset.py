"""A protoset of TF Serving's gRPC services, so `grpcurl` can call them without proto sources.

TF Serving does not offer gRPC reflection; `grpcurl -protoset tf_serving.protoset ...` needs
the service descriptors and everything they import, which `tensorflow-serving-api` carries.

Typical usage:
    python -m kattr.server.protoset serving/tf_serving.protoset
    grpcurl -plaintext -protoset serving/tf_serving.protoset \
        -d '{"model_spec": {"name": "kattr"}}' \
        127.0.0.1:8500 tensorflow.serving.ModelService/GetModelStatus
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor
from tensorflow_serving.apis import model_service_pb2, prediction_service_pb2

from kattr._atomic import write_bytes_atomic

__all__ = ["serving_file_descriptor_set", "write_protoset"]


def serving_file_descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    """PredictionService and ModelService with their imports, dependencies first."""
    files: list[descriptor_pb2.FileDescriptorProto] = []
    seen: set[str] = set()

    def add(descriptor: FileDescriptor) -> None:
        if descriptor.name in seen:
            return
        seen.add(descriptor.name)
        for dependency in descriptor.dependencies:
            add(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        descriptor.CopyToProto(proto)
        files.append(proto)

    for module in (prediction_service_pb2, model_service_pb2):
        add(module.DESCRIPTOR)
    return descriptor_pb2.FileDescriptorSet(file=files)


def write_protoset(path: str | os.PathLike) -> Path:
    """Writes `serving_file_descriptor_set()` to `path` atomically."""
    path = Path(path)
    write_bytes_atomic(path, serving_file_descriptor_set().SerializeToString())
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m kattr.server.protoset OUTPUT.protoset")
    print(write_protoset(sys.argv[1]))
