"""Synthetic product catalogs whose attribute evidence is drawn, visible and localised.

Each image shows one product (t-shirt, dress, trousers, shoe or bag) on a white background:
the body is filled with the product colour and its pattern (solid, striped, checked, dotted),
tops and dresses have arms whose length is the sleeve value, and the occasion tags are small
dark marks in the band above the product (casual: circle, left; party: triangle, centre;
sport: plus, right). Value frequencies are long-tailed, and realism knobs blank cells, flip
labels and add undecodable image files. The same seed gives the same files, byte for byte.

Files written into the catalog folder:
- `labels.csv`: the manifest to train on (blanked and noisy cells included), with a `split`
  column;
- `truth.csv`: the labels as drawn, plus `<attribute>_blanked` / `<attribute>_noisy` flags and
  the `corrupt` kind of each row;
- `regions.json`: image path -> attribute -> evidence boxes `[x0, y0, x1, y1]` in pixels of
  the saved image (x1, y1 exclusive, so `array[y0:y1, x0:x1]` crops one). The sleeve boxes
  cover where long sleeves would be, so a sleeveless top shows its evidence as empty space;
- `config.yaml`: a complete experiment config that `kattr-train` uses as is;
- `images/`: the images (JPEG, a few PNG, and the corrupt files when asked).

Example:
    >>> catalog = generate_catalog("demo", count=600, seed=0, image_size=64)
    >>> load_config(catalog.config_path).taxonomy.categories
    ['tshirt', 'dress', 'trousers', 'shoe', 'bag']
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from kattr.labels import write_manifest

__all__ = [
    "CATEGORIES",
    "COLOURS",
    "CORRUPT_KINDS",
    "OCCASIONS",
    "PATTERNS",
    "SLEEVES",
    "SLEEVE_CATEGORIES",
    "SynthError",
    "SyntheticCatalog",
    "generate_catalog",
]

# Every value list is ordered from most to least frequent (Zipf weights by rank).
CATEGORIES = ("tshirt", "dress", "trousers", "shoe", "bag")
COLOURS = {
    "red": (215, 35, 35),
    "blue": (35, 75, 215),
    "green": (35, 160, 60),
    "black": (30, 30, 30),
    "yellow": (240, 205, 25),
    "purple": (135, 45, 170),
}
PATTERNS = ("solid", "striped", "checked", "dotted")
SLEEVES = ("short", "long", "sleeveless")
SLEEVE_CATEGORIES = ("tshirt", "dress")
OCCASIONS = ("casual", "party", "sport")
CORRUPT_KINDS = ("random_bytes", "truncated_jpeg", "empty")

ATTRIBUTES = ("colour", "pattern", "sleeve", "occasion")
SPLIT_FRACTIONS = {"val": 0.15, "test": 0.15}
SECOND_OCCASION_PROBABILITY = 0.35
COLOUR_JITTER = 12
BACKGROUND = (255, 255, 255)
PATTERN_INK = (255, 255, 255)
MARK_INK = (40, 40, 40)
JPEG_QUALITY = 95
# Image positions (index modulo the cycle) saved as PNG to exercise every decoder path.
PNG_CYCLE = 40
PNG_RGB_POSITION = 17
PNG_RGBA_POSITION = 33
# Sub-streams of the seed: drawing (and corrupt bytes), label realism knobs, split assignment.
_DRAW_STREAM, _LABEL_STREAM, _SPLIT_STREAM = 0, 1, 2
_CATALOG_MARKERS = ("truth.csv", "regions.json")


class SynthError(ValueError):
    """Invalid arguments for a synthetic catalog, or an output folder that cannot be used."""


@dataclass
class SyntheticCatalog:
    """Where a generated catalog lives and what it holds.

    Args:
        root: the catalog folder.
        config_path: `config.yaml`, a complete experiment config.
        manifest_path: `labels.csv`, the labels to train on.
        regions_path: `regions.json`, evidence boxes per image and attribute.
        truth_path: `truth.csv`, the labels as drawn with blanked/noisy flags.
        image_dir: the `images/` folder.
        category_counts: rows per category (corrupt rows included).
        corrupt_images: manifest paths of the deliberately corrupt files.
    """

    root: Path
    config_path: Path
    manifest_path: Path
    regions_path: Path
    truth_path: Path
    image_dir: Path
    category_counts: dict[str, int] = field(default_factory=dict)
    corrupt_images: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Product:
    category: str
    colour: str
    pattern: str
    sleeve: str | None
    occasion: tuple[str, ...]

    def value(self, attribute: str) -> str | tuple[str, ...] | None:
        return getattr(self, attribute)


@dataclass(frozen=True)
class _Layout:
    """Where one product is drawn: image side, jittered centre and scale."""

    size: int
    center_x: float
    center_y: float
    scale: float

    def length(self, fraction: float) -> float:
        return fraction * self.size * self.scale


@dataclass(frozen=True)
class _Shoulders:
    """Where arms attach to a top: the torso's sides, its top and the arm sizes."""

    left: float
    right: float
    top: float
    arm_width: float
    short_length: float
    long_length: float
    gap: float


def _zipf(count: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, count + 1) ** exponent
    return weights / weights.sum()


def _sample_product(rng: np.random.Generator, imbalance: float) -> _Product:
    category = CATEGORIES[rng.choice(len(CATEGORIES), p=_zipf(len(CATEGORIES), imbalance))]
    colours = list(COLOURS)
    colour = colours[rng.choice(len(colours), p=_zipf(len(colours), imbalance))]
    pattern = PATTERNS[rng.choice(len(PATTERNS), p=_zipf(len(PATTERNS), imbalance))]
    sleeve_index = rng.choice(len(SLEEVES), p=_zipf(len(SLEEVES), imbalance))
    sleeve = SLEEVES[sleeve_index] if category in SLEEVE_CATEGORIES else None
    tag_count = 2 if rng.random() < SECOND_OCCASION_PROBABILITY else 1
    chosen = rng.choice(
        len(OCCASIONS), size=tag_count, replace=False, p=_zipf(len(OCCASIONS), imbalance)
    )
    occasion = tuple(OCCASIONS[i] for i in sorted(chosen))
    return _Product(category, colour, pattern, sleeve, occasion)


def _box(x0: float, y0: float, x1: float, y1: float) -> list[int]:
    """Rounds float bounds to an exclusive pixel box."""
    return [round(x0), round(y0), round(x1), round(y1)]


def _fill(draw: ImageDraw.ImageDraw, x0: float, y0: float, x1: float, y1: float) -> None:
    """Fills the exclusive pixel box; PIL's rectangle includes its far corner, hence the -1."""
    left, top, right, bottom = _box(x0, y0, x1, y1)
    if right > left and bottom > top:
        draw.rectangle([left, top, right - 1, bottom - 1], fill=255)


def _tshirt(body: ImageDraw.ImageDraw, solid: ImageDraw.ImageDraw, layout: _Layout):
    width, height = layout.length(0.40), layout.length(0.62)
    x0, y0 = layout.center_x - width / 2, layout.center_y - height / 2
    _fill(body, x0, y0, x0 + width, y0 + height)
    neck_width, neck_depth = 0.36 * width, 0.12 * height
    body.ellipse(
        _box(layout.center_x - neck_width / 2, y0 - neck_depth,
             layout.center_x + neck_width / 2, y0 + neck_depth),
        fill=0,
    )
    return _Shoulders(
        x0, x0 + width, y0, layout.length(0.13), 0.3 * height, 0.85 * height, layout.length(0.04)
    )


def _dress(body: ImageDraw.ImageDraw, solid: ImageDraw.ImageDraw, layout: _Layout):
    height, bodice_width, hem_width = layout.length(0.65), layout.length(0.30), layout.length(0.62)
    bodice_height = 0.38 * height
    x0, y0 = layout.center_x - bodice_width / 2, layout.center_y - height / 2
    waist, hem = y0 + bodice_height, y0 + height
    _fill(body, x0, y0, x0 + bodice_width, waist)
    body.polygon(
        [(x0, waist), (x0 + bodice_width, waist),
         (layout.center_x + hem_width / 2, hem), (layout.center_x - hem_width / 2, hem)],
        fill=255,
    )
    neck = 0.3 * bodice_width
    body.polygon(
        [(layout.center_x - neck, y0), (layout.center_x + neck, y0),
         (layout.center_x, y0 + 0.45 * bodice_height)],
        fill=0,
    )
    # Long sleeves end at the waist so that the widening skirt never enters the sleeve boxes.
    return _Shoulders(
        x0, x0 + bodice_width, y0, layout.length(0.11), 0.35 * bodice_height, bodice_height,
        layout.length(0.04),
    )


def _trousers(body: ImageDraw.ImageDraw, solid: ImageDraw.ImageDraw, layout: _Layout):
    width, height = layout.length(0.46), layout.length(0.65)
    x0, y0 = layout.center_x - width / 2, layout.center_y - height / 2
    gap = 0.10 * width
    leg = (width - gap) / 2
    _fill(body, x0, y0, x0 + width, y0 + 0.14 * height)
    _fill(body, x0, y0, x0 + leg, y0 + height)
    _fill(body, x0 + leg + gap, y0, x0 + width, y0 + height)


def _shoe(body: ImageDraw.ImageDraw, solid: ImageDraw.ImageDraw, layout: _Layout):
    width, height = layout.length(0.70), layout.length(0.38)
    x0 = layout.center_x - width / 2
    y1 = layout.center_y + 0.12 * layout.size
    y0 = y1 - height
    body.polygon(
        [(x0, y0), (x0 + 0.42 * width, y0), (x0 + 0.55 * width, y0 + 0.45 * height),
         (x0 + width, y0 + 0.6 * height), (x0 + width, y1 - 1), (x0, y1 - 1)],
        fill=255,
    )


def _bag(body: ImageDraw.ImageDraw, solid: ImageDraw.ImageDraw, layout: _Layout):
    width, height = layout.length(0.58), layout.length(0.44)
    x0 = layout.center_x - width / 2
    y0 = layout.center_y - height / 2 + 0.08 * layout.size
    left, top, right, bottom = _box(x0, y0, x0 + width, y0 + height)
    body.rounded_rectangle([left, top, right - 1, bottom - 1], radius=round(0.08 * width), fill=255)
    handle = 0.28 * width
    solid.arc(
        _box(layout.center_x - handle, y0 - 0.35 * height, layout.center_x + handle,
             y0 + 0.35 * height),
        start=180, end=360, fill=255, width=max(2, round(0.05 * layout.size)),
    )


_BODY_DRAWERS: dict[str, Callable[..., _Shoulders | None]] = {
    "tshirt": _tshirt,
    "dress": _dress,
    "trousers": _trousers,
    "shoe": _shoe,
    "bag": _bag,
}


def _draw_sleeves(
    solid: ImageDraw.ImageDraw, shoulders: _Shoulders, sleeve: str
) -> list[list[int]]:
    """Draws both arms; returns the long-sleeve boxes, the sleeve's evidence region.

    Each arm hangs a little apart from the torso, joined to it at the shoulder, so its length
    shows as a bar of its own instead of widening the silhouette.
    """
    length = {"short": shoulders.short_length, "long": shoulders.long_length}.get(sleeve, 0.0)
    gap, width, top = shoulders.gap, shoulders.arm_width, shoulders.top
    boxes = []
    for x0 in (shoulders.left - gap - width, shoulders.right + gap):
        x1 = x0 + width
        _fill(solid, x0, top, x1, top + length)
        boxes.append(_box(x0, top, x1, top + shoulders.long_length))
    if length:
        shoulder = min(length, 0.5 * width)
        _fill(solid, shoulders.left - gap, top, shoulders.left, top + shoulder)
        _fill(solid, shoulders.right, top, shoulders.right + gap, top + shoulder)
    return boxes


def _pattern_layer(
    size: int, colour: tuple[int, int, int], pattern: str, rng: np.random.Generator
) -> Image.Image:
    """A full canvas of the colour with the pattern in white; the body mask crops it."""
    layer = Image.new("RGB", (size, size), colour)
    draw = ImageDraw.Draw(layer)
    period = max(4, round(size / 8))
    half = period // 2
    offset_x, offset_y = (int(v) for v in rng.integers(period, size=2))
    if pattern == "striped":
        for y in range(offset_y - period, size, period):
            draw.rectangle([0, y, size - 1, y + half - 1], fill=PATTERN_INK)
    elif pattern == "checked":
        for row, y in enumerate(range(offset_y - period, size, half)):
            for column, x in enumerate(range(offset_x - period, size, half)):
                if (row + column) % 2:
                    draw.rectangle([x, y, x + half - 1, y + half - 1], fill=PATTERN_INK)
    elif pattern == "dotted":
        radius = 0.2 * period
        for row, y in enumerate(range(offset_y - period, size + period, period)):
            shift = half * (row % 2)
            for x in range(offset_x - period + shift, size + period, period):
                draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=PATTERN_INK)
    return layer


def _draw_marks(
    draw: ImageDraw.ImageDraw, occasion: tuple[str, ...], size: int, rng: np.random.Generator
) -> list[list[int]]:
    """Draws one mark per occasion tag in its slot of the top band; returns the mark boxes."""
    side = max(6, round(0.18 * size))
    margin = round(0.06 * size)
    slots = {"casual": margin, "party": (size - side) // 2, "sport": size - margin - side}
    top = round(0.03 * size) + int(rng.integers(0, 2))
    boxes = []
    for value in occasion:
        x0 = slots[value] + int(rng.integers(-1, 2))
        x1, y1 = x0 + side - 1, top + side - 1
        if value == "casual":
            draw.ellipse([x0, top, x1, y1], fill=MARK_INK)
        elif value == "party":
            draw.polygon([(x0 + (side - 1) / 2, top), (x1, y1), (x0, y1)], fill=MARK_INK)
        else:
            bar = side // 3
            draw.rectangle([x0 + bar, top, x1 - bar, y1], fill=MARK_INK)
            draw.rectangle([x0, top + bar, x1, y1 - bar], fill=MARK_INK)
        boxes.append([x0, top, x0 + side, top + side])
    return boxes


def _draw_product(
    product: _Product, size: int, rng: np.random.Generator
) -> tuple[Image.Image, dict[str, list[list[int]]]]:
    """Renders a product; returns the RGB image and its evidence boxes per attribute."""
    base = np.array(COLOURS[product.colour])
    jitter = rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, size=3)
    colour = tuple(int(v) for v in np.clip(base + jitter, 0, 255))
    layout = _Layout(
        size=size,
        center_x=size * (0.5 + rng.uniform(-0.04, 0.04)),
        center_y=size * (0.595 + rng.uniform(-0.03, 0.03)),
        scale=rng.uniform(0.9, 1.05),
    )
    body_mask = Image.new("L", (size, size), 0)
    solid_mask = Image.new("L", (size, size), 0)
    solid_draw = ImageDraw.Draw(solid_mask)
    shoulders = _BODY_DRAWERS[product.category](ImageDraw.Draw(body_mask), solid_draw, layout)
    body_box = list(body_mask.getbbox())
    regions = {"colour": [body_box], "pattern": [body_box]}
    if shoulders is not None:
        regions["sleeve"] = _draw_sleeves(solid_draw, shoulders, product.sleeve)
    # A rim of plain colour keeps the silhouette visible under white pattern ink.
    rim = 2 * max(1, size // 64) + 1
    image = Image.new("RGB", (size, size), BACKGROUND)
    image.paste(colour, mask=ImageChops.lighter(solid_mask, body_mask))
    pattern = _pattern_layer(size, colour, product.pattern, rng)
    image.paste(pattern, mask=body_mask.filter(ImageFilter.MinFilter(rim)))
    regions["occasion"] = _draw_marks(ImageDraw.Draw(image), product.occasion, size, rng)
    return image, regions


def _image_format(index: int) -> str:
    position = index % PNG_CYCLE
    if position == PNG_RGB_POSITION:
        return "png"
    return "png-rgba" if position == PNG_RGBA_POSITION else "jpeg"


def _encode(image: Image.Image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    if image_format == "jpeg":
        # 4:4:4 keeps thin pattern lines in their true colour at small sizes.
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    elif image_format == "png-rgba":
        # Transparent background, white underneath: decoders that drop alpha still see white.
        alpha = Image.fromarray(np.where(np.all(np.asarray(image) == 255, axis=-1), 0, 255)
                                .astype(np.uint8))
        rgba = image.copy()
        rgba.putalpha(alpha)
        rgba.save(buffer, format="PNG")
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def _corrupt_bytes(kind: str, image: Image.Image, rng: np.random.Generator) -> bytes:
    if kind == "random_bytes":
        # A zero first byte rules out an accidental JPEG/PNG/GIF/BMP signature.
        return b"\x00" + rng.integers(0, 256, size=255, dtype=np.uint8).tobytes()
    if kind == "truncated_jpeg":
        return _encode(image, "jpeg")[:40]  # cut inside the quantisation table header
    return b""


def _observe(
    product: _Product, rng: np.random.Generator, missing_rate: float, noise_rate: float
) -> tuple[dict[str, str | None], dict[str, bool]]:
    """The manifest cells of a product after blanking and label noise, and the flags."""
    cells, flags = {}, {}
    for attribute in ATTRIBUTES:
        true_value = product.value(attribute)
        blanked = noisy = False
        value = true_value
        if true_value is not None:
            blanked = bool(rng.random() < missing_rate)
            noisy = not blanked and bool(rng.random() < noise_rate)
            if blanked:
                value = None
            elif noisy:
                value = _wrong_value(attribute, true_value, rng)
        cells[attribute] = _cell(value)
        flags[f"{attribute}_blanked"], flags[f"{attribute}_noisy"] = blanked, noisy
    return cells, flags


def _wrong_value(
    attribute: str, true_value: str | tuple[str, ...], rng: np.random.Generator
) -> str | tuple[str, ...]:
    if attribute == "occasion":
        toggled = OCCASIONS[int(rng.integers(len(OCCASIONS)))]
        flipped = tuple(v for v in OCCASIONS if (v in true_value) != (v == toggled))
        if flipped:
            return flipped
        others = [v for v in OCCASIONS if v != toggled]
        return (others[int(rng.integers(len(others)))],)
    values = {"colour": list(COLOURS), "pattern": PATTERNS, "sleeve": SLEEVES}[attribute]
    others = [v for v in values if v != true_value]
    return others[int(rng.integers(len(others)))]


def _cell(value: str | tuple[str, ...] | None) -> str | None:
    if value is None:
        return None
    return "|".join(value) if isinstance(value, tuple) else value


def _assign_splits(categories: list[str], seed: int) -> list[str]:
    """Train/val/test per category (stratified), in the proportions of `SPLIT_FRACTIONS`."""
    rng = np.random.default_rng([seed, _SPLIT_STREAM])
    splits = ["train"] * len(categories)
    for category in CATEGORIES:
        rows = [i for i, c in enumerate(categories) if c == category]
        order = rng.permutation(len(rows))
        start = 0
        for split, fraction in SPLIT_FRACTIONS.items():
            stop = start + round(fraction * len(rows))
            for position in order[start:stop]:
                splits[rows[position]] = split
            start = stop
    return splits


def _config_data(image_size: int) -> dict:
    """A complete config for the catalog; every key exists in `kattr.config`."""
    return {
        "data": {
            "manifest": "labels.csv",
            "image_root": ".",
            "image_column": "image",
            "image_size": image_size,
            "splits": {"column": "split"},
        },
        "taxonomy": {
            "category_column": "category",
            "categories": list(CATEGORIES),
            "separator": "|",
            "attributes": [
                {"name": "colour", "values": list(COLOURS), "exclusive": True},
                {"name": "pattern", "values": list(PATTERNS), "exclusive": True},
                {"name": "sleeve", "values": list(SLEEVES), "exclusive": True,
                 "applies_to": list(SLEEVE_CATEGORIES)},
                {"name": "occasion", "values": list(OCCASIONS), "exclusive": False},
            ],
            # The predicted product type: one more exclusive head over `categories`. From
            # scratch the heads compete for the first features: at weight 1.0 the easy product
            # type often took them and occasion's small marks stayed unlearned (held-out mean
            # AUC 0.54-0.93 over four trainings); at 0.2 product type and sleeve stalled
            # (0.57-0.75, 0.66-0.69); 0.5 learned all five (see tests/test_learning.py).
            "category_output": {"name": "product_type", "weight": 0.5},
        },
        "model": {
            "weights": None,
            "attention": "transformer",
            "attention_width": 64,
            "num_heads": 8,
            "feedforward_width": 128,
            "branch_units": [64, 32],
            "batchnorm_momentum": 0.9,
            # Outputs start at the label priors: the plateau below is mostly the time it takes
            # zero-initialised outputs to learn them.
            "output_bias": "prior",
        },
        "train": {
            # From scratch, each attribute sits on a plateau (scores at the priors) for a varying
            # number of epochs. Measured on 1,200 images of 48 px (held-out mean AUC per
            # attribute, repeated trainings): 12 epochs at a constant 1e-3 left occasion or
            # sleeve at 0.57-0.60 in two of three runs; 20 epochs decayed by 0.9 learned all four
            # (0.73-0.95) in each of three. The paper's 1e-5 decayed by 0.75 per epoch suits
            # ImageNet weights and 15 epochs on a large catalog. The drawn products need no
            # augmentation to generalise; it slows these short runs, so it is off (switch it on
            # with --set train.augmentation.enabled=true).
            "epochs": 20,
            "batch_size": 16,
            "optimizer": {"learning_rate": 1e-3, "decay_rate": 0.9},
            "augmentation": {
                "enabled": False,
                "zoom": 0.1,
                "translation": 0.1,
                "rotation_degrees": 10.0,
                "shear_degrees": 5.0,
                "horizontal_flip": True,
            },
        },
    }


_CONFIG_HEADER = """\
# Synthetic catalog written by `kattr-data synth` (seed {seed}, {count} images of {size} px).
# Occasion marks differ in shape as well as place, so horizontal flips keep them readable.
"""


def _write_catalog(
    root: Path, count: int, seed: int, image_size: int, missing_rate: float,
    noise_rate: float, corrupt: int, imbalance: float,
) -> tuple[dict[str, int], list[str]]:
    """Writes every file of a catalog into `root`; returns category counts and corrupt paths."""
    (root / "images").mkdir()
    manifest, truth, regions, corrupt_images = [], [], {}, []
    for index in range(count + corrupt):
        draw_rng = np.random.default_rng([seed, _DRAW_STREAM, index])
        product = _sample_product(draw_rng, imbalance)
        image, boxes = _draw_product(product, image_size, draw_rng)
        corrupt_kind = CORRUPT_KINDS[(index - count) % len(CORRUPT_KINDS)] if index >= count else ""
        image_format = "jpeg" if corrupt_kind else _image_format(index)
        name = f"images/{index:05d}.{'jpg' if image_format == 'jpeg' else 'png'}"
        if corrupt_kind:
            data = _corrupt_bytes(corrupt_kind, image, draw_rng)
            corrupt_images.append(name)
        else:
            data = _encode(image, image_format)
            regions[name] = boxes
        (root / name).write_bytes(data)
        label_rng = np.random.default_rng([seed, _LABEL_STREAM, index])
        cells, flags = _observe(product, label_rng, missing_rate, noise_rate)
        manifest.append({"image": name, "category": product.category, **cells})
        truth.append({
            "image": name,
            "category": product.category,
            **{a: _cell(product.value(a)) for a in ATTRIBUTES},
            "corrupt": corrupt_kind,
            **flags,
        })
    splits = _assign_splits([row["category"] for row in manifest], seed)
    for manifest_row, truth_row, split in zip(manifest, truth, splits, strict=True):
        manifest_row["split"] = truth_row["split"] = split
    write_manifest(pd.DataFrame(manifest), root / "labels.csv")
    write_manifest(pd.DataFrame(truth), root / "truth.csv")
    lines = [f"{json.dumps(name)}: {json.dumps(boxes)}" for name, boxes in regions.items()]
    (root / "regions.json").write_text("{\n" + ",\n".join(lines) + "\n}\n")
    header = _CONFIG_HEADER.format(seed=seed, count=count, size=image_size)
    config_text = yaml.safe_dump(_config_data(image_size), sort_keys=False)
    (root / "config.yaml").write_text(header + config_text)
    counts = Counter(row["category"] for row in manifest)
    return {c: counts[c] for c in CATEGORIES}, corrupt_images


def _check_arguments(
    count: int, image_size: int, missing_rate: float, noise_rate: float, corrupt: int,
    imbalance: float,
) -> None:
    checks = [
        ("count", count, count >= 1, ">= 1"),
        ("image_size", image_size, image_size >= 32, ">= 32 (the smallest size configs accept)"),
        ("missing_rate", missing_rate, 0.0 <= missing_rate < 1.0, "in [0, 1)"),
        ("noise_rate", noise_rate, 0.0 <= noise_rate < 1.0, "in [0, 1)"),
        ("corrupt", corrupt, corrupt >= 0, ">= 0"),
        ("imbalance", imbalance, imbalance >= 0.0, ">= 0 (0 gives uniform frequencies)"),
    ]
    for name, value, ok, expected in checks:
        if not ok:
            raise SynthError(f"{name} must be {expected}. Received: {name}={value!r}")


def _check_destination(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise SynthError(f"{out_dir}: exists and is not a folder. Received: out_dir={out_dir}")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    if not overwrite:
        raise SynthError(
            f"{out_dir}: folder exists and is not empty; choose a new folder, or pass "
            f"overwrite=True (--overwrite) to replace a previous synthetic catalog. "
            f"Received: out_dir={out_dir}"
        )
    # Overwriting deletes the folder, so only a previous synthetic catalog may be replaced.
    if not all((out_dir / name).is_file() for name in _CATALOG_MARKERS):
        raise SynthError(
            f"{out_dir}: refusing to replace a folder that is not a synthetic catalog "
            f"(expected {', '.join(_CATALOG_MARKERS)} in it). Received: out_dir={out_dir}"
        )


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Renames the finished catalog onto `out_dir`, replacing an old one only once complete."""
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    if not any(out_dir.iterdir()):
        out_dir.rmdir()
        os.replace(staging, out_dir)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    os.replace(out_dir, retired / out_dir.name)
    os.replace(staging, out_dir)
    shutil.rmtree(retired)


def generate_catalog(
    out_dir: str | os.PathLike,
    count: int = 600,
    seed: int = 0,
    image_size: int = 64,
    missing_rate: float = 0.1,
    noise_rate: float = 0.0,
    corrupt: int = 0,
    *,
    imbalance: float = 1.0,
    overwrite: bool = False,
) -> SyntheticCatalog:
    """Draws a synthetic catalog and writes it into `out_dir` (built beside it, then renamed).

    Args:
        out_dir: the catalog folder; it must be absent or empty unless `overwrite`.
        count: number of valid images.
        seed: seed of every random choice; the same seed gives the same files.
        image_size: side of the square images in pixels.
        missing_rate: share of applicable cells blanked in `labels.csv`.
        noise_rate: share of the remaining cells replaced by a wrong value in `labels.csv`.
        corrupt: number of extra rows whose image file cannot be decoded.
        imbalance: Zipf exponent of the value frequencies (0 is uniform).
        overwrite: replace an `out_dir` that holds a previous synthetic catalog.

    Returns:
        The paths of the written files and the rows per category.

    Raises:
        SynthError: an argument out of range, or a non-empty `out_dir` that may not be replaced.

    Example:
        >>> catalog = generate_catalog("demo", count=100, corrupt=3)
        >>> sorted(p.name for p in catalog.root.iterdir())
        ['config.yaml', 'images', 'labels.csv', 'regions.json', 'truth.csv']
    """
    _check_arguments(count, image_size, missing_rate, noise_rate, corrupt, imbalance)
    out_dir = Path(out_dir)
    _check_destination(out_dir, overwrite)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        counts, corrupt_images = _write_catalog(
            staging, count, seed, image_size, missing_rate, noise_rate, corrupt, imbalance
        )
        staging.chmod(0o755)  # mkdtemp creates 0700 folders
        _move_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return SyntheticCatalog(
        root=out_dir,
        config_path=out_dir / "config.yaml",
        manifest_path=out_dir / "labels.csv",
        regions_path=out_dir / "regions.json",
        truth_path=out_dir / "truth.csv",
        image_dir=out_dir / "images",
        category_counts=counts,
        corrupt_images=corrupt_images,
    )
