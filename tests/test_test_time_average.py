"""`model.flip_average` and `model.zoom_average`: evaluation and in-process scoring average
the image's views as the export serves them (tests/test_export.py checks the export itself)."""

import io

import keras
import numpy as np
import pytest
from PIL import Image
from test_evaluation import TINY as EVALUATION_TINY

from kattr.apps import Scorer
from kattr.catalog import load_catalog
from kattr.config import load_config, save_config
from kattr.evaluation import predict_catalog
from kattr.model import build_model, zoom_view
from kattr.run_dir import RunDir

# At 32 px the backbone leaves one token, so attention softmaxes over a single key: harmless.
pytestmark = pytest.mark.filterwarnings("ignore:You are using a softmax:UserWarning")

# The tiny model of the evaluation tests; the synthetic config trains without mirror images.
TINY = [*EVALUATION_TINY, "train.augmentation.enabled=true"]
FLIP = [*TINY, "model.flip_average=true"]
ZOOM = [*TINY, "model.zoom_average=[0.9]"]


@pytest.fixture(scope="module")
def model_and_configs(synthetic_catalog):
    plain = load_config(synthetic_catalog.config_path, TINY)
    return build_model(plain), plain, load_config(synthetic_catalog.config_path, FLIP)


def on_view(model, view):
    """`model` applied to `view(image)` instead of the image."""
    image = keras.Input(model.input.shape[1:])
    return keras.Model(image, model(view(image)))


def mirror_of(model):
    return on_view(model, lambda image: keras.ops.flip(image, axis=2))


def zoomed_by(model, factor):
    return on_view(model, lambda image: zoom_view(image, factor))


def test_evaluation_scores_the_mean_of_the_image_and_its_mirror_image(model_and_configs):
    model, plain_config, flip_config = model_and_configs
    catalog = load_catalog(plain_config).subset("val")
    _, plain, _ = predict_catalog(model, plain_config, catalog)
    _, mirrored, _ = predict_catalog(mirror_of(model), plain_config, catalog)
    targets, averaged, skipped = predict_catalog(model, flip_config, catalog)
    assert skipped == 0 and len(targets["colour"]) == len(catalog)
    for name in averaged:
        np.testing.assert_allclose(averaged[name], (plain[name] + mirrored[name]) / 2, atol=1e-6)
    assert not np.allclose(averaged["colour"], plain["colour"], atol=1e-6)


def test_evaluation_scores_the_mean_over_the_zoomed_views(model_and_configs, synthetic_catalog):
    model, plain_config, _ = model_and_configs
    zoom_config = load_config(synthetic_catalog.config_path, ZOOM)
    catalog = load_catalog(plain_config).subset("val")
    _, plain, _ = predict_catalog(model, plain_config, catalog)
    _, zoomed, _ = predict_catalog(zoomed_by(model, 0.9), plain_config, catalog)
    _, averaged, _ = predict_catalog(model, zoom_config, catalog)
    for name in averaged:
        np.testing.assert_allclose(averaged[name], (plain[name] + zoomed[name]) / 2, atol=1e-6)
    assert not np.allclose(averaged["colour"], plain["colour"], atol=1e-6)


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def test_scorer_of_a_flip_average_run_gives_a_photo_and_its_mirror_the_same_scores(
    model_and_configs, tmp_path
):
    model, plain_config, flip_config = model_and_configs
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    photos = [png(pixels), png(pixels[:, ::-1])]
    scores, embeddings = {}, {}
    for name, config in (("plain", plain_config), ("flip", flip_config)):
        run = RunDir(tmp_path / name)
        run.root.mkdir()
        save_config(config, run.config)
        model.save(run.model)
        scores[name], embeddings[name] = Scorer.from_run(run.root).predict(photos)
    for values in scores["flip"].values():
        np.testing.assert_allclose(values[0], values[1], atol=1e-6)
    np.testing.assert_allclose(embeddings["flip"][0], embeddings["flip"][1], atol=1e-6)
    assert not np.allclose(scores["plain"]["colour"][0], scores["plain"]["colour"][1], atol=1e-6)


def test_scorer_of_a_zoom_average_run_scores_the_mean_over_the_zoomed_views(
    model_and_configs, synthetic_catalog, tmp_path
):
    model, _, _ = model_and_configs
    pixels = np.random.default_rng(1).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    run = RunDir(tmp_path / "zoom")
    run.root.mkdir()
    save_config(load_config(synthetic_catalog.config_path, ZOOM), run.config)
    model.save(run.model)
    scores, _ = Scorer.from_run(run.root).predict([png(pixels[0])])
    image = pixels.astype("float32")
    plain, zoomed = model(image), zoomed_by(model, 0.9)(image)
    for name, values in scores.items():
        expected = (np.asarray(plain[name]) + np.asarray(zoomed[name])) / 2
        np.testing.assert_allclose(values, expected, atol=1e-5, err_msg=name)
    assert not np.allclose(scores["colour"], np.asarray(plain["colour"]), atol=1e-5)
