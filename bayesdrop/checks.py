"""Argument checks shared by the whole package: a number, an int, a number in a range, each refused with the
argument's name.

For contributors writing a method, a layer or a data set: bad input gets a ``TypeError`` when it is not the kind of
value asked for and a ``ValueError`` when it is out of range, before any work starts, and nothing is converted from
text (``"3"`` is refused, ``True`` is not 1).  NumPy scalars and one-value tensors are numbers.

Example
-------
>>> from bayesdrop.checks import check_range, integer
>>> check_range("p", 0.3, 0.0, 1.0, hi_open=True)
0.3
>>> integer(3, "epochs")
3
"""

from __future__ import annotations

import numbers
import operator
from typing import Any

import torch

__all__ = ["MAX_SEED", "check_range", "integer", "real_number", "seed"]

MAX_SEED = 2**32 - 1  #: the largest seed: NumPy's and scikit-learn's are 32-bit (Pyro's set_rng_seed seeds NumPy)


def real_number(value: Any, name: str, what: str = "") -> float:
    """``value`` as a float: a real number (``numbers.Real``: ``int``, ``float``, NumPy's scalars) or a one-value real
    tensor; a ``TypeError`` naming ``name`` (and ``what`` it is, if given) otherwise, ``bool`` and strings included:
    nothing is converted from text."""
    one_value = torch.is_tensor(value) and value.numel() == 1 and not value.is_complex() and value.dtype != torch.bool
    if isinstance(value, bool) or not (isinstance(value, numbers.Real) or one_value):
        shown = repr(value) if isinstance(value, (str, bool)) else type(value).__name__
        raise TypeError(f"`{name}` must be a number{f' ({what})' if what else ''}, got {shown}")
    return float(value)


def integer(value: Any, name: str, what: str = "", low: int = 1) -> int:
    """``value`` as an int (``operator.index``: Python and NumPy integers; not ``bool``), at least ``low``: a
    ``TypeError`` naming ``name`` (and ``what`` it is, if given) if it is not an integer, a ``ValueError`` if it is
    below ``low``."""
    kind = "a positive int" if low == 1 else f"an int >= {low}"
    message = f"`{name}` must be {kind}{f' ({what})' if what else ''}, got {value!r}"
    try:
        if isinstance(value, bool):
            raise TypeError
        v = operator.index(value)
    except TypeError:
        raise TypeError(message) from None
    if v < low:
        raise ValueError(message)
    return v


def seed(value: Any, name: str = "seed", what: str = "") -> int:
    """``value`` as a seed: an int (Python's or NumPy's, not ``bool``) in ``[0, MAX_SEED]``, else a ``TypeError``
    (not an int) or ``ValueError`` (out of range) naming ``name`` (and ``what``, e.g. ``"or None"``).  The one range
    of every seed of the package: ``bd.fit`` seeds Pyro, which seeds NumPy, whose seeds are 32-bit."""
    v = integer(value, name, what, low=0)
    if v > MAX_SEED:
        raise ValueError(f"`{name}` must be an int in [0, 2**32 - 1]{f' ({what})' if what else ''}, got {value!r}")
    return v


def check_range(
    name: str, value: Any, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False, what: str = ""
) -> float:
    """A scalar hyper-parameter as a float (:func:`real_number`, whose ``TypeError`` says ``what`` it is), raising
    ``ValueError`` naming it if it is NaN or outside ``[lo, hi]`` (``(`` / ``)`` where ``lo_open`` / ``hi_open``):
    ``hi=math.inf, hi_open=True`` refuses infinity."""
    v = real_number(value, name, what)
    ok_lo = v > lo if lo_open else v >= lo
    ok_hi = v < hi if hi_open else v <= hi
    if not (ok_lo and ok_hi) or v != v:
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"`{name}` must lie in {interval}, got {value!r}")
    return v
