"""The serving/ folder: TF Serving configs, Compose and Kubernetes files agree with each other."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
import tensorflow as tf
import yaml
from google.protobuf import descriptor_pool, json_format, text_format
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.config import model_server_config_pb2

from kattr.server.protoset import serving_file_descriptor_set, write_protoset
from kattr.server.tensor_json import parse_predict_request

SERVING = Path(__file__).resolve().parents[1] / "serving"
CONFIG_FLAGS = {
    "--model_config_file=/config/models.config",
    "--batching_parameters_file=/config/batching_parameters.txt",
    "--monitoring_config_file=/config/monitoring.config",
    "--enable_batching=true",
}
# BatchingParameters fields (servables/tensorflow/session_bundle_config.proto).
BATCHING_FIELDS = {
    "max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads",
    "thread_pool_name", "allowed_batch_sizes", "pad_variable_length_inputs",
    "enable_large_batch_splitting",
}


@pytest.fixture(scope="module")
def model_config():
    config = text_format.Parse(
        (SERVING / "models.config").read_text(), model_server_config_pb2.ModelServerConfig()
    )
    [model] = config.model_config_list.config
    return model


@pytest.fixture(scope="module")
def kubernetes():
    documents = []
    for path in sorted((SERVING / "kubernetes").glob("*.yaml")):
        documents.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in documents}


def test_models_config_serves_the_latest_version_of_kattr(model_config):
    assert model_config.name == "kattr"
    assert model_config.base_path == "/models/kattr"
    assert model_config.model_platform == "tensorflow"
    assert model_config.model_version_policy.latest.num_versions == 1


def test_batching_parameters_are_valid_for_tf_serving():
    lines = [line.split("#")[0].strip() for line in
             (SERVING / "batching_parameters.txt").read_text().splitlines()]
    entries = [re.match(r"(\w+)\s*(?::\s*(\d+)|\{\s*value:\s*(\d+)\s*\})$", line)
               for line in lines if line]
    assert all(entries), lines
    assert {entry.group(1) for entry in entries} <= BATCHING_FIELDS
    allowed = [int(e.group(2)) for e in entries if e.group(1) == "allowed_batch_sizes"]
    [max_batch_size] = [int(e.group(3)) for e in entries if e.group(1) == "max_batch_size"]
    assert allowed == sorted(allowed) and allowed[-1] == max_batch_size


def test_monitoring_config_enables_prometheus():
    text = (SERVING / "monitoring.config").read_text()
    assert re.search(r"prometheus_config\s*\{[^}]*enable:\s*true", text)
    assert 'path: "/monitoring/prometheus/metrics"' in text


def test_compose_runs_the_matching_tf_serving_with_the_configs():
    service = yaml.safe_load((SERVING / "docker-compose.yml").read_text())["services"][
        "tensorflow-serving"
    ]
    major_minor = ".".join(tf.__version__.split(".")[:2])
    assert service["image"].startswith(f"tensorflow/serving:{major_minor}.")
    assert set(service["command"]) >= CONFIG_FLAGS
    assert all(volume.endswith(":ro") for volume in service["volumes"])
    mounted = {volume.rsplit(":", 2)[1] for volume in service["volumes"]}
    for flag in CONFIG_FLAGS - {"--enable_batching=true"}:
        container_path = flag.split("=")[1]
        assert container_path in mounted
        assert (SERVING / Path(container_path).name).exists()
    assert "/models" in mounted
    assert {port.rsplit(":", 1)[1] for port in service["ports"]} == {"8500", "8501"}


def test_kubernetes_deployment_service_and_autoscaler_fit_together(kubernetes, model_config):
    deployment = kubernetes[("Deployment", "kattr-serving")]
    pod = deployment["spec"]["template"]
    [container] = pod["spec"]["containers"]
    assert container["image"] == yaml.safe_load(
        (SERVING / "docker-compose.yml").read_text())["services"]["tensorflow-serving"]["image"]
    assert set(container["args"]) >= CONFIG_FLAGS
    probe = container["readinessProbe"]["httpGet"]
    assert probe["path"] == f"/v1/models/{model_config.name}"
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "grpc": 8500, "http": 8501
    }
    assert probe["port"] == "http"
    labels = pod["metadata"]["labels"].items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels
    for name in ("kattr-serving", "kattr-serving-headless"):
        service = kubernetes[("Service", name)]
        assert service["spec"]["selector"].items() <= labels
    hpa = kubernetes[("HorizontalPodAutoscaler", "kattr-serving")]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "kattr-serving"
    }
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    kustomization = yaml.safe_load((SERVING / "kustomization.yaml").read_text())
    config_map = pod["spec"]["volumes"][0]["configMap"]["name"]
    [generated] = kustomization["configMapGenerator"]
    assert generated["name"] == config_map
    for path in generated["files"] + kustomization["resources"]:
        assert (SERVING / path).exists()


README = (SERVING / "README.md").read_text()
IMAGE_B64 = base64.b64encode(b"\xff\xd8 jpeg bytes").decode()


def test_readme_says_production_uses_tf_serving_and_shows_every_call():
    assert "**Production uses TF Serving**" in README
    for call in ("docker run", "curl http://127.0.0.1:8501/v1/models/kattr",
                 "/v1/models/kattr:predict", "grpcurl -plaintext",
                 "tensorflow.serving.PredictionService/Predict",
                 "tensorflow.serving.ModelService/GetModelStatus"):
        assert call in README


def test_readme_rest_bodies_are_tf_serving_json():
    bodies = re.findall(r"printf '(\{.*?\})'", README, flags=re.S)
    assert len(bodies) == 2
    for body in bodies:
        text = body.replace("%s", IMAGE_B64).encode()
        request = parse_predict_request(text, lambda signature: {"image_bytes": tf.string})
        assert request.inputs["image_bytes"].tolist() == [b"\xff\xd8 jpeg bytes"]


def test_readme_grpcurl_predict_body_is_a_predict_request():
    body = re.search(r"<<EOF\n(.*?)\nEOF", README, flags=re.S).group(1)
    body = body.replace("$(base64 -w0 shirt.jpg)", IMAGE_B64)
    request = json_format.Parse(body, predict_pb2.PredictRequest())
    assert request.model_spec.name == "kattr"
    assert tf.make_ndarray(request.inputs["image_bytes"]).tolist() == [b"\xff\xd8 jpeg bytes"]


def test_protoset_describes_the_services_grpcurl_calls(tmp_path):
    path = write_protoset(tmp_path / "tf_serving.protoset")
    assert path.read_bytes() == serving_file_descriptor_set().SerializeToString()
    pool = descriptor_pool.DescriptorPool()
    for file in serving_file_descriptor_set().file:
        pool.Add(file)  # fails if a dependency came after its user
    prediction = pool.FindServiceByName("tensorflow.serving.PredictionService")
    assert {"Predict", "GetModelMetadata"} <= {method.name for method in prediction.methods}
    model = pool.FindServiceByName("tensorflow.serving.ModelService")
    assert "GetModelStatus" in {method.name for method in model.methods}
