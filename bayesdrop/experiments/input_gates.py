r"""The input-gate map of Srinivas & Babu (2016), Figure 2g, on the 8x8 digits.

Dropout++ on the input layer only (the hidden layers have no dropout): each of
the 64 pixels gets a learned keep probability ``k``.  Pixels that carry no
information (always 0 at the borders of the digits) get no gradient from the
likelihood, so the prior alone sets their gate; informative pixels are kept by
the likelihood.  With ``dropout++(0)`` (k pulled to 0) the map attends to the
centre of the image, as the paper's Figure 2g on MNIST.

For maintainers and for users curious what Dropout++ learns on the inputs: ``benchmarks/input_gates.py`` is the
command line that draws ``benchmarks/results/input_gates.png``, ``tests/test_generalized.py`` checks the map at a
small budget.

Usage::

    python benchmarks/input_gates.py [--method "dropout++(0)"] [--epochs 100] [--out benchmarks/results/input_gates.png]

Example
-------
>>> from bayesdrop.experiments.input_gates import centre_and_border, input_gate_map
>>> k, acc = input_gate_map("dropout++(0)", epochs=100)  # doctest: +SKIP
>>> centre_and_border(k)  # mean k of the central 4x4 pixels and of the border ring  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyro
import torch

import bayesdrop as bd

__all__ = ["centre_and_border", "input_gate_map", "main", "save_png"]


def input_gate_map(
    method: str = "dropout++(0)",
    *,
    epochs: int = 100,
    hidden: Sequence[int] = (300, 100),
    lr: float = 1e-2,
    seed: int = 0,
    **hyper: Any,
) -> tuple[torch.Tensor, float]:
    """Train an MLP on digits with ``method`` on its input layer only.

    Returns
    -------
    k : torch.Tensor
        The learned keep probabilities of the 64 pixels as an ``(8, 8)`` map.
    accuracy : float
        Test accuracy with the re-scaling rule (section 2.4).
    """
    ds = bd.data.load("digits")
    assert ds.num_classes is not None and ds.image_shape is not None, "digits: 10 classes of 8x8 images"
    pyro.set_rng_seed(seed)
    net = bd.models.mlp(
        ds.in_features,
        list(hidden),
        ds.num_classes,
        bd.methods.get("bernoulli", p=0.0),
        input_method=bd.methods.get(method, **hyper),
    )
    model = bd.Classifier(net, num_data=len(ds.train))
    guide = bd.DropoutGuide(model)
    # The protocol recorded in results/input_gates.png: a constant lr (fit's default now decays it).
    bd.fit(model, guide, ds.train, epochs=epochs, lr=lr, lr_decay=None, seed=seed, progress=False)
    k = bd.dropout_rates(model, guide)["net.0"].reshape(ds.image_shape[-2:])
    acc = bd.evaluate(model, guide, ds.test, rule="weight-scaling")["acc"]
    return k.cpu(), acc


def centre_and_border(k: torch.Tensor) -> tuple[float, float]:
    """Mean k of the central 4x4 pixels and of the outer ring of an 8x8 map."""
    border = torch.ones_like(k, dtype=torch.bool)
    border[1:-1, 1:-1] = False
    h, w = k.shape
    centre = k[h // 4 : h - h // 4, w // 4 : w - w // 4]
    return centre.mean().item(), k[border].mean().item()


def save_png(k: torch.Tensor, path: str | Path, title: str = "") -> None:
    """The mean training digit next to the gate map, as Figure 2g."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mean_image = bd.data.load("digits").images("train").mean(0)[0]
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.4))
    axes[0].imshow(mean_image, cmap="gray")
    axes[0].set_title("mean training digit")
    im = axes[1].imshow(k, cmap="viridis", vmin=0, vmax=1)
    axes[1].set_title("learned input gates k")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[1], fraction=0.046)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None, *, default_out: str | Path = "benchmarks/results/input_gates.png") -> None:
    """The command line of ``benchmarks/input_gates.py``: learn the map, save the figure, print the summary.

    Parameters
    ----------
    argv
        The options (``sys.argv[1:]`` when ``None``).
    default_out
        The figure written when ``--out`` is not given.
    """
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--method", default="dropout++(0)")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(default_out))
    args = parser.parse_args(argv)
    k, acc = input_gate_map(args.method, epochs=args.epochs, seed=args.seed)
    centre, border = centre_and_border(k)
    save_png(k, args.out, f"{args.method} on the input layer of digits ({args.epochs} epochs, test acc {acc:.3f})")
    print(f"mean k: centre 4x4 {centre:.3f}, border ring {border:.3f}; test accuracy {acc:.3f}; saved {args.out}")
    print((k * 100).round().int())
