"""Record the posterior-mean and pruned networks' outputs of every method configuration (run once, before the
architecture change; the test compares the new posterior-mean handler against this file)."""

import sys

import torch

sys.path.insert(0, "tests")
from helpers import tiny_classifier, tiny_convnet  # noqa: E402

import bayesdrop as bd  # noqa: E402

CONFIGS = [(name, {}) for name in bd.methods.names()] + [
    ("vd", {"granularity": "unit", "max_log_alpha": None}),
    ("vbd", {"granularity": "layer"}),
    ("vbd", {"granularity": "unit"}),
]


def randomise(guide, g):
    with torch.no_grad():
        for name, p in guide.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("k",):
                p.copy_(torch.rand(p.shape, generator=g))
            elif leaf in ("log_alpha", "log_sigma2", "noise_log_sigma2"):
                p.copy_(torch.empty(p.shape).uniform_(-6, 6, generator=g) if leaf == "log_alpha" else
                        torch.empty(p.shape).uniform_(-12, 2, generator=g))
            elif leaf == "noise_loc":
                p.copy_(1 + 0.5 * torch.randn(p.shape, generator=g))
            else:
                p.add_(0.1 * torch.randn(p.shape, generator=g))


def main():
    out = {}
    g = torch.Generator().manual_seed(1)
    for name, hyper in CONFIGS:
        for kind, build in (("linear", tiny_classifier), ("conv", tiny_convnet)):
            model, guide, x, y = build(name, **hyper)
            guide(x, y)
            randomise(guide, g)
            key = f"{name}|{','.join(f'{k}={v}' for k, v in sorted(hyper.items()))}|{kind}"
            with torch.no_grad():
                with guide.mean_network():
                    mean = model(x)
                with guide.mean_network(pruned=True):
                    pruned = model(x)
            out[key] = {
                "guide": {k: v.clone() for k, v in guide.state_dict().items()},
                "model": {k: v.clone() for k, v in model.state_dict().items()},
                "x": x, "mean": mean, "pruned": pruned,
            }
    torch.save(out, "tests/data/mean_reference.pt")
    print(len(out), "configurations")


if __name__ == "__main__":
    main()
