"""The geometry of ``bd.nn.Conv1d`` / ``Conv2d``: bad values refused at construction, naming the argument; good ones
built as ``torch.nn.Conv1d`` / ``Conv2d`` builds them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bayesdrop as bd

LAYERS = {1: (bd.nn.Conv1d, torch.nn.Conv1d), 2: (bd.nn.Conv2d, torch.nn.Conv2d)}

# (dims, argument, value, exception): every value is refused by the layer of `dims` spatial axes
BAD = [
    (2, "stride", 0, ValueError),
    (2, "stride", (1, 0), ValueError),
    (2, "stride", -2, ValueError),
    (2, "stride", 1.0, TypeError),
    (2, "stride", (1, True), TypeError),
    (2, "padding", -1, ValueError),
    (2, "padding", (0, -1), ValueError),
    (2, "padding", (1, 1, 1), ValueError),
    (2, "padding", "SAME", ValueError),
    (2, "padding", "full", ValueError),
    (2, "padding", None, TypeError),
    (2, "padding", (1, 1.5), TypeError),
    (2, "dilation", 0, ValueError),
    (2, "dilation", (1, -1), ValueError),
    (2, "dilation", False, TypeError),
    (2, "kernel_size", 0, ValueError),
    (2, "kernel_size", (3,), ValueError),
    (2, "kernel_size", (3, 3, 3), ValueError),
    (2, "kernel_size", 2.5, TypeError),
    (2, "kernel_size", True, TypeError),
    (2, "kernel_size", "3", TypeError),
    (2, "kernel_size", None, TypeError),
    (2, "kernel_size", (3, np.float64(3.0)), TypeError),
    (2, "in_channels", 0, ValueError),
    (2, "in_channels", 2.0, TypeError),
    (2, "in_channels", True, TypeError),
    (2, "out_channels", -3, ValueError),
    (2, "out_channels", "3", TypeError),
    (1, "kernel_size", (3, 3), ValueError),
    (1, "kernel_size", 0, ValueError),
    (1, "kernel_size", 2.5, TypeError),
    (1, "stride", 0, ValueError),
    (1, "padding", -1, ValueError),
    (1, "padding", (-1,), ValueError),
    (1, "dilation", 0, ValueError),
    (1, "dilation", (2, 2), ValueError),
    (1, "in_channels", np.int64(0), ValueError),
    (1, "out_channels", 1.5, TypeError),
]


@pytest.mark.parametrize(("dims", "name", "value", "error"), BAD, ids=[f"conv{d}d-{n}={v!r}" for d, n, v, _ in BAD])
def test_a_bad_geometry_is_refused_at_construction_naming_the_argument(dims, name, value, error):
    """Each bad ``in_channels``, ``out_channels``, ``kernel_size``, ``stride``, ``padding`` or ``dilation`` gets a
    ``TypeError`` (not an int or a tuple of them; ``True`` is not 1, ``2.5`` not an int) or a ``ValueError`` (out of
    range, a tuple of the wrong length, an unknown padding string) from the constructor, naming the argument and what
    it accepts, where torch used to fail at the first forward pass."""
    args = {"in_channels": 2, "out_channels": 3, "kernel_size": 3, name: value}
    with pytest.raises(error, match=f"`{name}` must be") as info:
        LAYERS[dims][0](**args)
    if name not in ("in_channels", "out_channels"):
        assert f"{dims} positive int" in str(info.value) or f"{dims} int" in str(info.value)


@pytest.mark.parametrize("dims", [1, 2])
def test_same_padding_with_a_stride_other_than_one_is_refused_as_torch_refuses_it(dims):
    """``padding="same"`` needs stride 1, as in ``torch.nn.Conv2d``: a ``ValueError`` naming ``padding`` and
    ``stride``."""
    conv, _ = LAYERS[dims]
    with pytest.raises(ValueError, match=r"`padding='same'` needs `stride` 1.*stride=\(2"):
        conv(2, 3, 3, padding="same", stride=2)


def test_a_bad_noise_is_still_refused_by_name():
    """``noise`` keeps its check: one of ``"element"`` and ``"channel"``."""
    with pytest.raises(ValueError, match="`noise` must be one of"):
        bd.nn.Conv2d(2, 3, 3, noise="pixel")


GOOD = [
    (2, {"kernel_size": 3}),
    (2, {"kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 0), "dilation": (1, 2)}),
    (2, {"kernel_size": [3, 3], "stride": [1, 2], "padding": [2, 1]}),
    (2, {"kernel_size": np.int64(3), "stride": np.int32(2), "padding": np.int64(1), "dilation": np.int16(1)}),
    (2, {"kernel_size": (np.int64(3), 2), "stride": (1, np.int64(2))}),
    (2, {"kernel_size": 4, "padding": "same", "dilation": 2}),
    (2, {"kernel_size": 3, "padding": "valid", "stride": 2}),
    (2, {"kernel_size": torch.Size([3, 3]), "padding": 0}),
    (1, {"kernel_size": 3}),
    (1, {"kernel_size": (5,), "stride": (2,), "padding": (2,), "dilation": (1,)}),
    (1, {"kernel_size": np.int64(3), "stride": np.int64(2), "padding": np.int64(1)}),
    (1, {"kernel_size": 2, "padding": "same", "dilation": 2}),
    (1, {"kernel_size": 3, "padding": "valid", "dilation": 2}),
]


@pytest.mark.parametrize(("dims", "geometry"), GOOD, ids=[f"conv{d}d-{i}" for i, (d, _) in enumerate(GOOD)])
@pytest.mark.parametrize("method", ["bernoulli", "dropconnect"])
def test_a_valid_geometry_builds_and_runs_as_the_torch_convolution_of_the_same_geometry(dims, geometry, method):
    """Ints, tuples, lists, NumPy ints and the padding strings build a layer with torch's ``kernel_size``,
    ``stride``, ``padding`` and ``dilation`` (as Python ints), whose forward pass (one weight, or one per example
    under DropConnect) gives the output shape of ``torch.nn.Conv1d`` / ``Conv2d`` of the same geometry, and whose
    plain export at torch's weights is that convolution."""
    conv, plain = LAYERS[dims]
    layer = conv(2, 3, method=method, **geometry)
    ref = plain(2, 3, **geometry)
    for attr in ("kernel_size", "stride", "padding", "dilation"):
        got = getattr(layer, attr)
        assert got == getattr(ref, attr)
        assert isinstance(got, str) or all(type(v) is int for v in got)
    x = torch.randn(4, 2, *(11,) * dims)
    with torch.no_grad():
        assert layer(x).shape == ref(x).shape
        torch.testing.assert_close(layer.to_plain({"weight": ref.weight}, ref.bias)(x), ref(x))


@pytest.mark.parametrize("dims", [1, 2])
def test_numpy_ints_are_channel_counts_as_python_ints_are(dims):
    """``in_channels`` and ``out_channels`` take NumPy's ints (``bayesdrop.checks.integer``), kept as Python ints:
    the layer is the one of the same Python ints."""
    conv, _ = LAYERS[dims]
    layer = conv(np.int64(2), np.int32(3), 3)
    assert (layer.in_channels, layer.out_channels) == (2, 3)
    assert type(layer.in_channels) is int and type(layer.out_channels) is int
    assert layer(torch.randn(4, 2, *(7,) * dims)).shape == (4, 3, *(5,) * dims)
