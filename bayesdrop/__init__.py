"""bayesdrop: dropout methods as Pyro model/guide pairs.

>>> import bayesdrop as bd
>>> data = bd.data.load("digits")
>>> net = bd.models.mlp(64, [300, 100], 10, method="bernoulli")
>>> model = bd.Classifier(net, num_data=len(data.train))
>>> guide = bd.DropoutGuide(model)
>>> result = bd.fit(model, guide, data.train, epochs=100)    # doctest: +SKIP
>>> probs = bd.predict(model, guide, data.test.x, num_samples=100)  # doctest: +SKIP
"""

from . import (
    compress,
    data,
    diagnostics,
    distributions,
    handlers,
    likelihoods,
    methods,
    models,
    moments,
    nn,
    posterior,
    scoring,
    sites,
)
from .diagnostics import to_inference_data
from .guides import DropoutGuide, dropout_rates
from .infer import (
    CollapseWarning,
    FitInterrupted,
    FitResult,
    evaluate,
    fit,
    load_checkpoint,
    predict,
    save_checkpoint,
)
from .likelihoods import Classifier, Likelihood, Regressor
from .nn import bayesianize

__version__ = "0.1.0"


__all__ = [
    "compress",
    "data",
    "distributions",
    "methods",
    "models",
    "moments",
    "nn",
    "handlers",
    "likelihoods",
    "posterior",
    "scoring",
    "sites",
    "diagnostics",
    "to_inference_data",
    "bayesianize",
    "Likelihood",
    "Classifier",
    "Regressor",
    "DropoutGuide",
    "dropout_rates",
    "fit",
    "FitResult",
    "FitInterrupted",
    "CollapseWarning",
    "predict",
    "evaluate",
    "save_checkpoint",
    "load_checkpoint",
]
