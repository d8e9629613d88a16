"""The README's "library in ten lines", run verbatim with a registered method name for ``"bernoulli"``.

Shared by ``test_readme.py`` and the digits cases of the defaults matrix (``test_defaults.py``): the snippet builds
``bd.models.mlp(64, [300, 100], 10, ...)`` and trains it with every default of ``bd.fit`` except ``epochs``, which
is exactly a defaults-matrix case, so each method is trained once for both.
"""

from __future__ import annotations

import functools
import re
import warnings
from pathlib import Path

import pyro
import torch

import bayesdrop as bd
from bayesdrop.experiments import defaults as D

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_block(heading: str) -> str:
    """The first python block of the README after the section heading ``heading``."""
    text = README.read_text()
    section = text[text.index(f"## {heading}") :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"the README has no python block under '{heading}'"
    return match.group(1)


def snippet() -> str:
    """The README's "library in ten lines"."""
    return _python_block("The library in ten lines")


def pyro_snippet() -> str:
    """The README's plain-Pyro training loop (the first python block under "The plain-Pyro path")."""
    return _python_block("The plain-Pyro path")


def snippet_epochs() -> int:
    match = re.search(r"bd\.fit\(model, guide, data\.train, epochs=(\d+)\)", snippet())
    assert match, "the README's bd.fit call must pass only epochs"
    return int(match.group(1))


@functools.cache
def run(method: str) -> dict:
    """Execute the snippet with ``method``; its namespace plus ``acc``, ``ratio``, ``collapse`` and ``case``."""
    code = snippet()
    assert code.count('method="bernoulli"') == 1
    namespace: dict = {}
    torch.manual_seed(0)  # the snippet's initial weights (bd.fit seeds itself, seed=0 by default)
    # Pyro's validation (on in the tests, conftest.py) checks every step of bd.fit and changes no number it
    # computes (test_conformance.py); off, the ten trainings here take about a third less time.
    with warnings.catch_warnings(record=True) as caught, pyro.validation_enabled(False):
        warnings.simplefilter("always", bd.CollapseWarning)
        exec(compile(code.replace('method="bernoulli"', f"method={method!r}"), "README.md", "exec"), namespace)
    data, model, guide = namespace["data"], namespace["model"], namespace["guide"]
    correct = namespace["probs"].argmax(-1).cpu() == data.test.y
    namespace["acc"] = correct.double().mean().item()
    namespace["ratio"] = namespace["report"].ratio
    namespace["collapse"] = [str(w.message) for w in caught if issubclass(w.category, bd.CollapseWarning)]
    namespace["case"] = D.Case(
        method, "digits", snippet_epochs(), 0, error=100 * (1 - namespace["acc"]), kept=D.fewest_kept(guide),
        warnings=list(namespace["result"].warnings), model=model, guide=guide,
    )  # fmt: skip
    return namespace
