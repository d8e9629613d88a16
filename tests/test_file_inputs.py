"""Bad files and bad arguments of the file and data functions: each gets a ``TypeError`` or ``ValueError`` (or the
``OSError`` of the file's state) naming the argument and what is accepted, before any work starts, instead of an
error from deep inside torch.export, scikit-learn, pathlib or an unpacking, or a silently wrong result.  One test per
finding: saving a Bayesian model, paths of the wrong type, ``Split`` and ``Dataset`` fields, 64-bit seeds, float
labels, a file given as the MNIST directory, a netCDF file of other data, ``write_report``'s directory and header,
and a ``kfold`` builder that returns no pair."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import torch

import bayesdrop as bd
from bayesdrop import diagnostics as D
from bayesdrop.diagnostics import arviz as _arviz
from bayesdrop.fileio import check_path


def _classifier(seed: int = 0, n: int = 20):
    """A small trained-shape classifier (not fitted: the checks run before any use of its weights), its guide run
    once, and data."""
    torch.manual_seed(seed)
    x, y = torch.randn(n, 4), torch.randint(0, 3, (n,))
    model = bd.Classifier(bd.models.mlp(4, [8], 3), num_data=n)
    guide = bd.DropoutGuide(model)
    guide(x)
    return model, guide, x, y


def _idata():
    """A small InferenceData of a classifier (test data, 8 draws)."""
    model, guide, x, y = _classifier()
    return bd.to_inference_data(model, guide, (x, y), num_samples=8, seed=0)


# ------------------------------------------------------------------ compress


def test_saving_a_bayesian_model_or_its_guide_is_refused_before_the_export_with_the_plain_network_to_save(tmp_path):
    """``bd.compress.save`` exports a plain network: the model, its ``net`` (which holds Bayesian layers) and the
    guide used to fail deep inside ``torch.export`` (a violated batch constraint, a dynamic_shapes mismatch); now a
    ``TypeError`` names ``module`` and points to ``prune`` and ``mean_module``, and nothing is written."""
    model, guide, x, _ = _classifier()
    path = tmp_path / "x.pt2"
    for module, what in ((model, "likelihood"), (guide, "bd.DropoutGuide"), (model.net, "holds Bayesian layers")):
        with pytest.raises(TypeError, match=rf"`module`.*{what}.*bd\.compress\.prune.*bd\.compress\.mean_module"):
            bd.compress.save(module, path, x[:2])
    with pytest.raises(TypeError, match="`module` must be a plain torch.nn.Module .*got str"):
        bd.compress.save("net", path, x[:2])
    assert not path.exists()
    for plain in (bd.compress.prune(model, guide), bd.compress.mean_module(model, guide)):  # what save takes
        bd.compress.save(plain, path, x[:2])
        torch.testing.assert_close(bd.compress.load(path)(x), plain(x))


def test_paths_of_another_type_are_refused_naming_the_argument(tmp_path):
    """``compress.save(pm, 3, ...)``, ``save_netcdf(idata, 3)`` gave Python's "expected str, bytes or os.PathLike
    object, not int", ``compress.load(None)`` "stat: path should be string ...": now a ``TypeError`` naming
    ``path``, and a ``ValueError`` for the empty path (which pathlib reads as the current directory)."""
    model, guide, x, _ = _classifier()
    pruned = bd.compress.prune(model, guide)
    idata = _idata()
    calls = {
        "save": lambda p: bd.compress.save(pruned, p, x[:2]),
        "load": bd.compress.load,
        "check_pt2": bd.compress.check_pt2,
        "save_netcdf": lambda p: D.save_netcdf(idata, p),
        "load_netcdf": D.load_netcdf,
    }
    for call in calls.values():
        for bad, got in ((3, "int"), (None, "NoneType"), (b"x.pt2", "bytes")):
            with pytest.raises(TypeError, match=rf"`path` must be a path \(str or os.PathLike.*got {got}"):
                call(bad)
        with pytest.raises(ValueError, match="`path` must be a path .*got the empty path"):
            call("")
    assert list(tmp_path.iterdir()) == []
    assert check_path(pathlib.Path("a") / "b", "path") == str(pathlib.Path("a") / "b")


# ---------------------------------------------------------------------- data


def test_a_split_of_lists_none_or_arrays_is_refused_naming_x_or_y():
    """``Split([1, 2], [3])`` raised an ``AttributeError``, ``Split(None, None)`` "object of type 'NoneType' has no
    len()"; a Split holds tensors, and says so."""
    with pytest.raises(TypeError, match=r"Split: `x` must be a torch.Tensor, got list"):
        bd.data.Split([1, 2], [3])
    with pytest.raises(TypeError, match=r"Split: `x` must be a torch.Tensor, got NoneType"):
        bd.data.Split(None, None)
    with pytest.raises(TypeError, match=r"Split: `y` must be a torch.Tensor, got ndarray \(convert it with torch"):
        bd.data.Split(torch.zeros(3, 2), np.arange(3))
    with pytest.raises(ValueError, match=r"Split: `y` must have N rows.*0-d tensor"):
        bd.data.Split(torch.zeros(3, 2), torch.tensor(1))
    assert len(bd.data.Split(torch.zeros(3, 2), torch.arange(3))) == 3


def test_a_seed_beyond_32_bits_is_refused_naming_seed_for_every_data_set():
    """``load("digits", seed=2**40)`` failed in scikit-learn naming its ``random_state``; every data set now takes
    the seeds scikit-learn and NumPy's legacy seeding take, 0 to 2**32 - 1, checked before anything is built."""
    for name in bd.data.DATASETS:
        with pytest.raises(ValueError, match=r"`seed` must be an int in \[0, 2\*\*32 - 1\], got 1099511627776"):
            bd.data.load(name, seed=2**40)
    assert len(bd.data.load("toy-regression", seed=2**32 - 1, n_train=4, n_test=2).train) == 4


def _splits(n: int = 4, classes: int = 3):
    g = torch.Generator().manual_seed(0)
    return (
        bd.data.Split(torch.rand(n, 4, generator=g), torch.randint(0, classes, (n,), generator=g)),
        bd.data.Split(torch.rand(n, 4, generator=g), torch.randint(0, classes, (n,), generator=g)),
    )


def test_a_dataset_with_an_unknown_task_or_fields_of_the_wrong_kind_is_refused():
    """``Dataset(task="bogus", num_classes=0, train="a")`` was accepted; each field is now checked on construction,
    naming it and the accepted values."""
    train, test = _splits()
    good = {"name": "t", "train": train, "test": test, "task": "classification", "num_classes": 3}
    cases = [
        ({"task": "bogus"}, ValueError, "`task` must be 'classification' or 'regression', got 'bogus'"),
        ({"num_classes": 0}, ValueError, r"`num_classes` must be an int >= 2"),
        ({"num_classes": None}, TypeError, r"`num_classes` must be an int >= 2"),
        ({"num_classes": 2}, ValueError, r"`train.y` must hold labels in \[0, 1\]"),
        ({"train": "a"}, TypeError, "Dataset: `train` must be a bayesdrop.data.Split, got str"),
        ({"test": (test.x, test.y)}, TypeError, "Dataset: `test` must be a bayesdrop.data.Split, got tuple"),
        ({"name": None}, TypeError, "Dataset: `name` must be a str"),
        ({"task": "regression"}, ValueError, "`num_classes` must be None for a regression data set"),
        ({"task": "regression", "num_classes": None}, ValueError, r"`train.y` of a regression data set must hold"),
        ({"image_shape": (1, 3, 3)}, ValueError, r"`image_shape` \(1, 3, 3\) holds 9 values .*`train.x` has 4"),
        ({"image_shape": [1, 2, 2]}, TypeError, "`image_shape` must be a tuple of ints"),
        ({"image_shape": (1, 0, 4)}, ValueError, "`image_shape` must be a positive int"),
        ({"gap": (1.0, -1.0)}, ValueError, r"`gap` must be \(lo, hi\) with lo < hi"),
        ({"x_range": ("a", 1.0)}, TypeError, "`x_range` must be a number"),
        ({"x_range": 3.0}, TypeError, r"`x_range` must be a \(lo, hi\) tuple"),
        ({"series": {}}, TypeError, "`series` must be a bayesdrop.data.Series or None"),
    ]
    for change, error, match in cases:
        with pytest.raises(error, match=match):
            bd.data.Dataset(**{"image_shape": None, **good, **change})
    ds = bd.data.Dataset(**good, image_shape=(1, 2, 2))
    assert ds.images("train").shape == (4, 1, 2, 2)


def _idx_header(magic: int, dims: tuple[int, ...]) -> bytes:
    return np.array([magic, *dims], dtype=">i4").tobytes()


def _mnist_dir(root: pathlib.Path, labels: bytes | None = None, n: int = 3) -> None:
    """The four MNIST files of ``n`` 2 x 2 images, the training labels replaced by ``labels`` (raw bytes)."""
    for prefix in ("train", "t10k"):
        (root / f"{prefix}-images-idx3-ubyte").write_bytes(_idx_header(2051, (n, 2, 2)) + bytes(4 * n))
        (root / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx_header(2049, (n,)) + bytes([1] * n))
    if labels is not None:
        (root / "train-labels-idx1-ubyte").write_bytes(labels)


def test_float_labels_are_refused_not_truncated(tmp_path):
    """``IDXImages`` turned a float label 1.7 into 1; it now takes integer labels only (and uint8 images, whose
    pixels it divides by 255), and an IDX label file of floats is named with its type."""
    images = np.zeros((2, 2, 2), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"`labels` must be \(N,\) integer class labels.*got float64"):
        bd.data.IDXImages(images, np.array([1.7, 0.0]))
    with pytest.raises(ValueError, match=r"`labels` must be \(N,\) integer class labels.*got int64 of shape \(2, 1\)"):
        bd.data.IDXImages(images, np.zeros((2, 1), dtype=np.int64))
    with pytest.raises(ValueError, match="`labels` must hold class labels >= 0, found -1"):
        bd.data.IDXImages(images, np.array([1, -1]))
    with pytest.raises(ValueError, match=r"`images` must be \(N, rows, cols\) unsigned bytes.*got float32"):
        bd.data.IDXImages(images.astype(np.float32), np.array([1, 0]))
    with pytest.raises(TypeError, match="`labels` must be a numpy.ndarray.*got list"):
        bd.data.IDXImages(images, [1, 0])
    assert bd.data.IDXImages(images, np.array([1, 0], dtype=np.uint8))[0][1].item() == 1
    floats = _idx_header(0x0D01, (3,)) + np.array([1.7, 0.0, 2.0], dtype=">f4").tobytes()  # IDX type 0x0D: float32
    _mnist_dir(tmp_path, floats)
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte: .*found 3329 \(float32 data, 1-d\); only unsig"):
        bd.data.load_mnist(tmp_path)


def test_a_file_given_as_the_mnist_directory_is_named_a_file(tmp_path):
    """``load_mnist(<a regular file>)`` said the directory does not exist; it is a file, and the error says so."""
    a_file = tmp_path / "train-images-idx3-ubyte"
    a_file.write_bytes(b"")
    for call in (bd.data.load_mnist, bd.data.open_mnist):
        with pytest.raises(NotADirectoryError, match="`directory` is a file, not a directory"):
            call(a_file)
        with pytest.raises(FileNotFoundError, match="does not exist"):
            call(tmp_path / "missing")
    with pytest.raises(TypeError, match=r"`directory` must be a path \(str or os.PathLike.*got int"):
        bd.data.load_mnist(3)
    good = tmp_path / "mnist"
    good.mkdir()
    _mnist_dir(good)
    assert len(bd.data.load_mnist(good).train) == 3


# --------------------------------------------------------------- diagnostics


def test_a_netcdf_file_of_other_data_is_refused_as_holding_no_inference_data(tmp_path):
    """``load_netcdf`` of a valid netCDF file that is no InferenceData (an ``xarray.Dataset`` written at the root)
    returned an empty InferenceData; now a ``ValueError`` names ``path`` and says it holds no groups."""
    import xarray as xr

    other = tmp_path / "other.nc"
    xr.Dataset({"t": ("x", np.arange(3.0))}).to_netcdf(other)
    with pytest.raises(ValueError, match=r"`path` '.*other\.nc' is a netCDF file but holds no InferenceData groups"):
        D.load_netcdf(other)
    saved = D.save_netcdf(_idata(), tmp_path / "idata.nc")
    assert "posterior_predictive" in _arviz.groups(D.load_netcdf(saved))


def test_write_report_refuses_a_file_as_its_directory_and_a_str_as_its_header(tmp_path):
    """``write_report(idata, <existing file>)`` raised pathlib's bare ``FileExistsError``, and ``header="abc"``
    wrote one line per character; both are refused before anything is computed or written, naming the argument
    (``header`` is a sequence of lines, as its docstring says: a str is refused, with the fix)."""
    idata = _idata()
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(ValueError, match=r"`out_dir` '.*a_file' exists and is not a directory"):
        D.write_report(idata, a_file)
    with pytest.raises(TypeError, match=r"`out_dir` must be a path \(str or os.PathLike.*got int"):
        D.write_report(idata, 3)
    out = tmp_path / "report"
    with pytest.raises(TypeError, match=r"`header` must be a sequence of str .*got a str.*pass \['abc'\]"):
        D.write_report(idata, out, header="abc")
    with pytest.raises(TypeError, match="`header` must be a sequence of str .*got a list with an item of type int"):
        D.write_report(idata, out, header=["a", 3])
    with pytest.raises(TypeError, match="`header` must be a sequence of str .*got NoneType"):
        D.write_report(idata, out, header=None)
    with pytest.raises(TypeError, match="`title` must be a str, got int"):
        D.write_report(idata, out, title=3)
    with pytest.raises(NotADirectoryError, match=r"creating the report directory `out_dir`.*a_file/sub"):
        D.write_report(idata, a_file / "sub")  # a parent that is a file
    assert not out.exists()
    report = D.write_report(idata, out, header=["line one", "line two"]).read_text()
    assert "\nline one\nline two\n" in report


def test_a_kfold_builder_that_returns_no_pair_is_named_with_what_it_must_return():
    """``kfold(lambda n: 3, ...)`` failed with "cannot unpack non-iterable int object"; now a ``TypeError`` names
    ``build`` and the (model, guide) pair it must return, before any fit."""
    _, _, x, y = _classifier()
    for build, got in ((lambda n: 3, "got int"), (lambda n: (1, 2, 3), "got a tuple of length 3")):
        with pytest.raises(TypeError, match=rf"`build` must return a \(model, guide\) pair.*{got} from build\(10\)"):
            D.kfold(build, (x, y), k=2, progress=False)
