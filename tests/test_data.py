"""kexp.data: every source through the shared pipeline, plus the errors a user can cause."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from omegaconf import OmegaConf
from PIL import Image

from kexp.data import DataBundle, load
from kexp.errors import KexpError

REPO = Path(__file__).resolve().parents[1]


def data_cfg(config: str, /, **overrides):
    """conf/data/<config>.yaml with `overrides` merged in (nested keys as dicts)."""
    cfg = OmegaConf.load(REPO / "conf" / "data" / f"{config}.yaml")
    return OmegaConf.merge(cfg, overrides)


def unbatch(ds) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*((x.numpy(), y.numpy()) for x, y in ds), strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def assert_error(match: str, cfg, batch: int = 8):
    with pytest.raises(KexpError, match=match):
        load(cfg, batch, 0)


# ---------------------------------------------------------------------------- digits (real data)


def test_digits_shapes_scaling_and_split_sizes():
    bundle = load(data_cfg("digits"), 32, 0)
    spec = bundle.spec
    assert isinstance(bundle, DataBundle)
    assert spec.name == "digits"
    assert spec.input_shape == (8, 8, 1)
    assert spec.num_classes == 10 and spec.class_names == [str(i) for i in range(10)]
    assert spec.num_train + spec.num_val + spec.num_test == 1797
    assert spec.num_test == 360 and spec.num_val == 144  # ceil(0.2 * 1797), ceil(0.1 * 1437)
    x, y = next(iter(bundle.train))
    assert x.shape == (32, 8, 8, 1) and x.dtype == tf.float32 and y.dtype == tf.int32
    x_all, y_all = unbatch(bundle.train)
    assert len(y_all) == spec.num_train
    assert x_all.min() == 0.0 and x_all.max() == 1.0  # raw 0..16 divided by scale 16
    x_test, y_test = unbatch(bundle.test)
    assert len(y_test) == 360 and set(y_test) == set(range(10))
    # stratified: each class keeps its share of the test split (about 36 of ~180 each)
    assert np.bincount(y_test, minlength=10).min() >= 35
    assert np.bincount(y_test, minlength=10).max() <= 37


def test_train_order_is_a_function_of_seed_and_epoch():
    first = unbatch(load(data_cfg("digits"), 64, 7).train)[1]
    again_bundle = load(data_cfg("digits"), 64, 7)
    again = unbatch(again_bundle.train)[1]
    np.testing.assert_array_equal(first, again)
    other = unbatch(load(data_cfg("digits"), 64, 8).train)[1]
    assert not np.array_equal(np.sort(first), first)  # shuffled at all
    assert len(other) == len(first) and not np.array_equal(first, other)
    again_bundle.epoch.assign(1)  # what the DataEpoch callback does as epoch 2 begins
    second_epoch = unbatch(again_bundle.train)[1]
    assert not np.array_equal(again, second_epoch)
    np.testing.assert_array_equal(np.sort(again), np.sort(second_epoch))
    # however many iterators came before (a resumed run made none): epoch 2 is epoch 2
    np.testing.assert_array_equal(unbatch(again_bundle.train)[1], second_epoch)
    fresh = load(data_cfg("digits"), 64, 7)
    fresh.epoch.assign(1)
    np.testing.assert_array_equal(unbatch(fresh.train)[1], second_epoch)


def test_train_order_ignores_the_global_seed_even_when_it_is_zero():
    """`seed=0` runs set TensorFlow's global seed to 0, which once broke building the
    shuffle (tf's get_seed compares a tensor op seed with 0 in Python)."""
    orders = []
    for global_seed in (0, 5):
        tf.random.set_seed(global_seed)
        orders.append(unbatch(load(data_cfg("digits"), 64, 0).train)[1])
    np.testing.assert_array_equal(orders[0], orders[1])


def test_seed_none_shuffles_freely_but_keeps_the_test_split():
    a, b = load(data_cfg("digits"), 400, None), load(data_cfg("digits"), 400, None)
    np.testing.assert_array_equal(unbatch(a.test)[1], unbatch(b.test)[1])
    seeded = load(data_cfg("digits"), 400, 0)
    np.testing.assert_array_equal(unbatch(a.test)[1], unbatch(seeded.test)[1])
    with pytest.raises(KexpError, match="seed: 'x' must be an integer"):
        load(data_cfg("digits"), 8, "x")


def test_subset_limits_every_split():
    bundle = load(data_cfg("digits", subset=50), 16, 0)
    spec = bundle.spec
    assert (spec.num_train, spec.num_val, spec.num_test) == (50, 50, 50)
    assert len(unbatch(bundle.train)[1]) == 50
    assert len(unbatch(bundle.val)[1]) == 50
    assert len(unbatch(bundle.test)[1]) == 50


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"source": "csv"}, r"data.source: 'csv' is not one of digits, tfds"),
        ({"val_fraction": 0}, r"data.val_fraction: 0 must be .* between 0 and 1"),
        ({"val_fraction": 1.0}, r"data.val_fraction"),
        ({"test_fraction": "half"}, r"data.test_fraction: 'half'"),
        ({"subset": 0}, r"data.subset: 0 must be a positive integer or null"),
        ({"subset": 2.5}, r"data.subset"),
        ({"scale": -1}, r"data.scale: -1 must be a positive number or 'auto'"),
        ({"mean": [0.5, 0.5, 0.5], "std": [1, 1, 1]}, r"data.mean: .* list of 1 numbers"),
        ({"mean": [0.5], "std": [0.0]}, r"data.std: .* must all be > 0"),
        ({"mean": [0.5]}, r"data.mean and data.std must be set together"),
        ({"augment": {"crop_padding": -2}}, r"data.augment.crop_padding: -2"),
        ({"augment": {"horizontal_flip": "yes"}}, r"data.augment.horizontal_flip: 'yes'"),
        ({"cache": 3}, r"data.cache: 3 must be true or false"),
    ],
)
def test_bad_keys_name_the_key(overrides, match):
    assert_error(match, data_cfg("digits", **overrides))


def test_bad_batch_size():
    with pytest.raises(KexpError, match="global_batch_size: 0"):
        load(data_cfg("digits"), 0, 0)


def test_mean_std_normalization_and_unknown_cardinality_count():
    from kexp.data import pipeline
    from kexp.data import raw as raw_splits

    x = np.arange(2 * 3 * 3 * 2, dtype=np.uint8).reshape(2, 3, 3, 2) * 7
    y = np.array([0, 1])
    raw = raw_splits.from_arrays((x, y), (x, y), (x, y), ["a", "b"])
    # a filter hides the cardinality, so the count has to iterate
    raw.train = raw.train.filter(lambda x, y: y >= 0)
    cfg = data_cfg("digits", scale="auto", mean=[0.1, 0.2], std=[0.5, 0.25])
    bundle = pipeline.build(raw, cfg, 4, 0)
    assert bundle.spec.num_train == 2 and bundle.spec.input_shape == (3, 3, 2)
    got = unbatch(bundle.test)[0]
    want = (x / 255.0 - np.array([0.1, 0.2])) / np.array([0.5, 0.25])
    np.testing.assert_allclose(got, want, rtol=1e-5)


# ---------------------------------------------------------------------------------- augmentation


def test_random_crop_picks_a_window_of_the_padded_image():
    from kexp.data.augment import random_crop

    images = tf.reshape(tf.range(6 * 5 * 4 * 2, dtype=tf.float32) + 1, (6, 5, 4, 2))
    assert np.array_equal(random_crop(images, 0, tf.constant([1, 2])), images)
    out = random_crop(images, 2, tf.constant([3, 4])).numpy()
    assert out.shape == (6, 5, 4, 2)
    padded = np.pad(images.numpy(), [(0, 0), (2, 2), (2, 2), (0, 0)])
    offsets = []
    for i in range(6):
        windows = [(r, c) for r in range(5) for c in range(5)
                   if np.array_equal(padded[i, r:r + 5, c:c + 4], out[i])]
        assert windows, f"image {i} is not a crop of its padded input"
        offsets.append(windows[0])
    assert len(set(offsets)) > 1  # each image draws its own offset


def test_random_flip_flips_some_images_only():
    from kexp.data.augment import random_flip

    images = tf.random.stateless_uniform((64, 4, 5, 3), seed=[0, 1])
    out = random_flip(images, tf.constant([5, 6])).numpy()
    flipped = [np.array_equal(out[i], images.numpy()[i, :, ::-1]) for i in range(64)]
    same = [np.array_equal(out[i], images.numpy()[i]) for i in range(64)]
    assert all(f or s for f, s in zip(flipped, same, strict=True))
    assert 10 < sum(flipped) < 54


# ------------------------------------------------------------------------------------------- npz


def write_npz(path: Path, **arrays) -> Path:
    rng = np.random.default_rng(0)
    base = {
        "x_train": rng.integers(0, 256, (40, 6, 7), dtype=np.uint8),
        "y_train": np.arange(40) % 4,
        "x_test": rng.integers(0, 256, (12, 6, 7), dtype=np.uint8),
        "y_test": np.arange(12) % 4,
    }
    base.update(arrays)
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return path


def test_npz_uint8_grey_gets_channel_axis_and_auto_scale(tmp_path):
    path = write_npz(tmp_path / "d.npz")
    bundle = load(data_cfg("npz", path=str(path)), 8, 0)
    spec = bundle.spec
    assert spec.input_shape == (6, 7, 1)
    assert spec.num_classes == 4 and spec.class_names == ["0", "1", "2", "3"]
    assert (spec.num_train, spec.num_val, spec.num_test) == (36, 4, 12)
    x_test, y_test = unbatch(bundle.test)  # the user's test split keeps its order
    raw = np.load(path)
    np.testing.assert_allclose(x_test[..., 0], raw["x_test"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y_test, raw["y_test"])
    assert next(iter(bundle.train))[0].shape == (8, 6, 7, 1)
    assert sorted(unbatch(bundle.val)[1]) == [0, 1, 2, 3]  # stratified hold-out


def test_npz_float_rgb_keeps_values(tmp_path):
    x = np.random.default_rng(1).random((20, 4, 4, 3)).astype(np.float32)
    path = write_npz(tmp_path / "f.npz", x_train=x, y_train=np.arange(20) % 2, x_test=x[:5],
                     y_test=np.array([0, 1, 0, 1, 1.0]))
    bundle = load(data_cfg("npz", path=str(path)), 8, 0)
    assert bundle.spec.input_shape == (4, 4, 3) and bundle.spec.num_classes == 2
    np.testing.assert_allclose(unbatch(bundle.test)[0], x[:5])  # scale auto: 1 for floats


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"y_test": None}, r"lacks array\(s\) y_test"),
        ({"y_train": np.arange(39) % 4}, r"x_train has 40 examples but y_train has 39"),
        ({"y_train": np.linspace(0, 3, 40)}, r"y_train must hold integer class ids"),
        ({"y_train": np.arange(40) % 4 - 1}, r"y_train has negative label -1"),
        ({"y_test": np.arange(12) % 5}, r"y_test has label 4 but y_train .* up to 3"),
        ({"y_train": np.eye(4)[np.arange(40) % 4]}, r"y_train has shape \(40, 4\).*argmax"),
        ({"x_train": np.zeros((40, 42))}, r"x_train has shape \(40, 42\)"),
        ({"x_test": np.zeros((12, 6, 8), np.uint8)}, r"x_test images are \(6, 8, 1\)"),
    ],
)
def test_npz_bad_arrays_are_named(tmp_path, arrays, match):
    path = write_npz(tmp_path / "bad.npz", **arrays)
    assert_error(match, data_cfg("npz", path=str(path)))


def test_npz_bad_path(tmp_path):
    assert_error(r"data.path is required", data_cfg("npz"))
    missing = tmp_path / "nope.npz"
    assert_error(rf"data.path: '{re.escape(str(missing))}' does not exist",
                 data_cfg("npz", path=str(missing)))
    not_npz = tmp_path / "x.npz"
    not_npz.write_text("hello")
    assert_error(r"is not a readable .npz file", data_cfg("npz", path=str(not_npz)))
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros(3))
    assert_error(r"is not an .npz archive", data_cfg("npz", path=str(npy)))


# ---------------------------------------------------------------------------------- image_folder

COLOURS = {"blue": (0, 0, 255), "green": (0, 255, 0), "red": (255, 0, 0)}
FORMATS = [("png", "RGB"), ("jpg", "RGB"), ("bmp", "RGB"), ("webp", "RGB"), ("png", "RGBA"),
           ("gif", "P"), ("tiff", "RGB"), ("jpeg", "L")]


def write_images(root: Path, classes=COLOURS, per_class: int = 8) -> None:
    """Solid-colour images, one colour per class, in every format and several sizes."""
    for name in classes:
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            ext, mode = FORMATS[i % len(FORMATS)]
            size = (10 + 3 * i, 12 + 2 * (i % 3))
            img = Image.new("RGB", size, COLOURS[name])
            if mode == "L":  # grey images are fine in an RGB folder: they become grey RGB
                img = Image.new("RGB", size, (128, 128, 128))
            elif mode != "RGB":
                img = img.convert(mode)
            img.save(folder / f"img{i}.{ext}")
        (folder / "notes.txt").write_text("not an image")  # ignored


def test_image_folder_formats_resize_and_class_names(tmp_path):
    write_images(tmp_path)
    (tmp_path / ".ipynb_checkpoints").mkdir()  # hidden folders are not classes
    bundle = load(data_cfg("image_folder", path=str(tmp_path), image_size=[9, 11]), 4, 0)
    spec = bundle.spec
    assert spec.class_names == ["blue", "green", "red"] and spec.num_classes == 3
    assert spec.input_shape == (9, 11, 3)
    assert spec.num_train + spec.num_val + spec.num_test == 24
    assert spec.num_test == 5  # ceil(0.2 * 24)
    x, y = unbatch(bundle.train)
    assert x.shape[1:] == (9, 11, 3) and x.min() >= 0 and x.max() <= 1
    for label, name in enumerate(spec.class_names):
        colour = np.array(COLOURS[name]) / 255.0
        grey = np.full(3, 128 / 255.0)
        for image in x[y == label]:
            centre = image[4, 5]
            assert np.allclose(centre, colour, atol=0.05) or np.allclose(centre, grey, atol=0.05)


def test_image_folder_grey_channels(tmp_path):
    write_images(tmp_path, per_class=3)
    cfg = data_cfg("image_folder", path=str(tmp_path), image_size=[6, 6], channels=1)
    bundle = load(cfg, 4, 0)
    assert bundle.spec.input_shape == (6, 6, 1)
    assert next(iter(bundle.train))[0].shape[1:] == (6, 6, 1)


def test_image_folder_train_test_layout(tmp_path):
    write_images(tmp_path / "train", per_class=6)
    write_images(tmp_path / "test", classes=["blue", "red"], per_class=2)
    bundle = load(data_cfg("image_folder", path=str(tmp_path), image_size=[8, 8]), 4, 0)
    spec = bundle.spec
    assert spec.class_names == ["blue", "green", "red"]
    assert spec.num_test == 4 and spec.num_train + spec.num_val == 18
    assert sorted(unbatch(bundle.test)[1]) == [0, 0, 2, 2]


def test_image_folder_errors(tmp_path):
    def cfg(path):
        return data_cfg("image_folder", path=str(path), image_size=[8, 8])

    assert_error(r"data.path is required", data_cfg("image_folder"))
    assert_error(r"does not exist", cfg(tmp_path / "missing"))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_error(r"has no class subfolders", cfg(empty))
    one = tmp_path / "one"
    write_images(one, classes=["red"], per_class=2)
    assert_error(r"has only 1 class folder \('red'\)", cfg(one))
    hollow = tmp_path / "hollow"
    write_images(hollow, classes=["blue", "red"], per_class=2)
    (hollow / "green").mkdir()
    assert_error(rf"class folder '{re.escape(str(hollow / 'green'))}' has no images", cfg(hollow))
    broken = tmp_path / "broken"
    write_images(broken, classes=["blue", "red"], per_class=3)
    (broken / "red" / "zz.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    assert_error(rf"cannot read image '{re.escape(str(broken / 'red' / 'zz.jpg'))}'", cfg(broken))
    assert_error(r"data.channels: 4 must be 1 \(grey\) or 3",
                 data_cfg("image_folder", path=str(hollow), channels=4))


@pytest.mark.parametrize("size", [[8], [0, 8], [8.5, 8], "64"])
def test_image_folder_bad_image_size(tmp_path, size):
    write_images(tmp_path, classes=["blue", "red"], per_class=2)
    assert_error(r"data.image_size: .* two positive integers",
                 data_cfg("image_folder", path=str(tmp_path), image_size=size))


# ------------------------------------------------------------------------------------------ TFDS


@pytest.fixture
def mock_tfds():
    with tfds.testing.mock_data(num_examples=48):
        yield


def test_tfds_mnist_mocked(mock_tfds):
    bundle = load(data_cfg("mnist"), 16, 0)
    spec = bundle.spec
    assert spec.name == "mnist" and spec.input_shape == (28, 28, 1)
    assert spec.num_classes == 10 and len(spec.class_names) == 10
    assert spec.num_train == 48  # the mock ignores slicing: counts come from the data itself
    x, y = next(iter(bundle.train))
    assert x.shape == (16, 28, 28, 1) and x.dtype == tf.float32 and y.dtype == tf.int32
    assert 0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 1


def test_tfds_cifar10_mocked_normalized_and_augmented(mock_tfds):
    cfg = data_cfg("cifar10", subset=20)
    bundle = load(cfg, 8, 0)
    assert bundle.spec.input_shape == (32, 32, 3) and bundle.spec.num_classes == 10
    assert bundle.spec.num_test == 20
    raw = tfds.load("cifar10", split="test", as_supervised=True)
    raw_x = np.stack([x.numpy() for x, _ in raw.take(8)])
    want = (raw_x / 255.0 - np.array(cfg.mean)) / np.array(cfg.std)
    np.testing.assert_allclose(next(iter(bundle.test))[0].numpy(), want, rtol=1e-4, atol=1e-5)
    x, y = next(iter(bundle.train))
    assert x.shape == (8, 32, 32, 3) and y.shape == (8,)
    # the mock serves the same examples in every split: un-augmented, train would equal test
    train_x, test_x = unbatch(bundle.train)[0], unbatch(bundle.test)[0]
    assert len(train_x) == 20
    untouched = sum(any(np.array_equal(a, b) for b in test_x) for a in train_x)
    assert untouched < 10


def test_tfds_unknown_or_non_image_names(tmp_path):
    assert_error(r"data.name: 'no_such_dataset_xyz' is not a TFDS dataset",
                 data_cfg("mnist", name="no_such_dataset_xyz", data_dir=str(tmp_path)))
    assert_error(r"'imdb_reviews' is not an image-classification dataset",
                 data_cfg("mnist", name="imdb_reviews", data_dir=str(tmp_path)))


def test_tfds_missing_data_fails_fast_offline(tmp_path):
    from kexp.data.sources.tfds import online

    cfg = data_cfg("mnist", data_dir=str(tmp_path), download=False)
    start = time.monotonic()
    assert_error(r"'mnist' is not in .* and data.download is false", cfg)
    assert time.monotonic() - start < 10  # the bound; here it takes ~0.1 s
    if online():
        pytest.skip("this machine reaches the internet: download=true would really download")
    start = time.monotonic()
    assert_error(r"cannot reach the internet .*tfds build mnist",
                 data_cfg("mnist", data_dir=str(tmp_path), download=True))
    assert time.monotonic() - start < 10


def test_tfds_real_prepared_dataset_with_fractional_val_split(tmp_path):
    """A real TFDS dataset on disk: the builder is prepared and split slicing is honoured."""
    features = tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(5, 6, 1)),
        "label": tfds.features.ClassLabel(names=["ant", "bee", "cat"]),
    })
    rng = np.random.default_rng(0)

    def split(n):
        return tf.data.Dataset.from_tensor_slices({
            "image": rng.integers(0, 256, (n, 5, 6, 1), dtype=np.uint8),
            "label": np.arange(n) % 3,
        })

    tfds.dataset_builders.store_as_tfds_dataset(
        name="kexp_tiny", version="1.0.0", features=features,
        split_datasets={"train": split(40), "test": split(10)}, data_dir=str(tmp_path))
    cfg = data_cfg("mnist", name="kexp_tiny", data_dir=str(tmp_path), download=False,
                   val_fraction=0.125)
    bundle = load(cfg, 8, 0)
    spec = bundle.spec
    assert (spec.num_train, spec.num_val, spec.num_test) == (35, 5, 10)
    assert spec.class_names == ["ant", "bee", "cat"] and spec.input_shape == (5, 6, 1)
    assert next(iter(bundle.val))[0].shape == (5, 5, 6, 1)
