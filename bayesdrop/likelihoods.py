r"""Likelihoods: what an observation is, given the network's output.

For everyone who trains a bayesdrop network: a likelihood wraps a network of Bayesian layers into the Pyro model

.. math::
    p(y, \theta) = p(\theta) \prod_{n=1}^{N} p(y_n \mid f_\theta(x_n)),

with a ``pyro.plate("data", N, subsample=...)`` over the data, so that a minibatch of size B has its
log-likelihood scaled by N / B while the global KL terms stay unscaled.

A likelihood is one method, :meth:`Likelihood.distribution`, the distribution of ``y`` given the network output.
Everything :func:`~bayesdrop.fit`, :func:`~bayesdrop.predict`, :func:`~bayesdrop.evaluate` and
:func:`~bayesdrop.to_inference_data` need derives from it: the observation site (:meth:`~Likelihood.observe`),
the pointwise log-likelihood (:meth:`~Likelihood.log_likelihood`), the posterior predictive summary from output
draws (:meth:`~Likelihood.predictive`), its metrics (:meth:`~Likelihood.metrics`) and the variables of the ArviZ
``posterior_predictive`` group (:meth:`~Likelihood.predictive_variables`).  :class:`Classifier` and
:class:`Regressor` refine some of them; a user's likelihood may override any.

Example
-------
A heteroscedastic regression, the network predicting a mean and a scale per input:

>>> class Heteroscedastic(bd.Likelihood):
...     def distribution(self, out):
...         return dist.Normal(out[..., 0], F.softplus(out[..., 1]) + 0.01)
>>> model = Heteroscedastic(bd.models.mlp(1, [64, 64], 2), num_data=len(x))
>>> guide = bd.DropoutGuide(model)
>>> bd.fit(model, guide, (x, y))
>>> mean, std = bd.predict(model, guide, x_new)   # mixture mean and std over the draws
"""

from __future__ import annotations

import functools
import math
from typing import Any

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.nn import PyroModule

from .checks import integer, real_number
from .data import check_labels
from .distributions import LogitsCategorical, SigmaPointAverage
from .moments import Moments, wide_dtype
from .nn import Embedding, bayesian_layers, local_plate
from .scoring import accuracy, nll, rmse
from .sites import draws

__all__ = ["Likelihood", "Classifier", "Regressor", "Prediction", "model_precision", "class_softmax"]

Prediction = Any  # what Likelihood.predictive returns: class probabilities, or (mean, std), or a user's own


class Likelihood(PyroModule):
    """Base class of the likelihoods: the Pyro model around a Bayesian network.

    Subclasses define :meth:`distribution`; the other methods derive from it and may be overridden (for speed, or
    for a prediction other than the predictive mean and standard deviation).

    Parameters
    ----------
    net : torch.nn.Module
        A network containing :mod:`bayesdrop.nn` layers (``bd.models.mlp``, ``bd.bayesianize(...)``, ...).
    num_data : int
        Size N of the training set, for the N / B scaling of minibatches.
    """

    def __init__(self, net: torch.nn.Module, num_data: int):
        super().__init__()
        if not isinstance(net, torch.nn.Module) or not bayesian_layers(net):
            raise TypeError("`net` must be a torch.nn.Module containing bayesdrop.nn layers (see bd.bayesianize)")
        self.net = net
        self.num_data = _positive_int(num_data, "num_data", "the training-set size")

    # -- the model ---------------------------------------------------------------------------------------------

    def distribution(self, out: torch.Tensor) -> dist.TorchDistribution:
        r"""The distribution :math:`p(y \mid f)` of the targets given network outputs ``out``.

        Parameters
        ----------
        out : torch.Tensor
            Network outputs ``(..., N, *out_shape)``, with leading sample dimensions under prediction.

        Returns
        -------
        pyro.distributions.TorchDistribution
            Batch shape ``(..., N)``; its event is one target ``y_n``.
        """
        raise NotImplementedError(f"{type(self).__name__} must define distribution(out)")

    def data_plate(self, x: torch.Tensor, y: torch.Tensor | None = None) -> pyro.plate:
        """The subsampled data plate for a minibatch ``x`` (shared by model and guide).

        Its size B is a Python number, so that each site's scale N / B is one: a recorded graph
        (:mod:`bayesdrop.infer.compiled`, one per minibatch shape) would otherwise compute it from a traced size
        with tensor operations at every site of every step.

        Parameters
        ----------
        x : torch.Tensor
            The minibatch's inputs ``(B, ...)``; B is the size of its leading axis.
        y : torch.Tensor, optional
            The minibatch's targets, unused by this default: accepted so that the guide can pass the arguments it is
            called with (``guide(x, y)``), and for subclasses whose plate depends on them.
        """
        b = int(x.shape[0])
        return pyro.plate("data", self.num_data, subsample=torch.arange(b, device=x.device), subsample_size=b, dim=-1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Run the network (weights global, masks per example) and observe ``y``; returns the network output.

        Parameters
        ----------
        x : torch.Tensor
            Inputs ``(B, ...)``: floating point, in the dtype of the model's parameters (:meth:`check_inputs`), or
            int64/int32 tokens for a network with an embedding.
        y : torch.Tensor, optional
            Targets, one entry per row of ``x`` (``(B, ...)``), the observed value of the site ``"obs"``; ``None``
            (prediction) samples the site instead.

        Returns
        -------
        torch.Tensor or Moments
            The network output ``(B, *out_shape)``; ``(S, B, *out_shape)`` in a vectorised run of S draws
            (:func:`~bayesdrop.sites.draws`), and the :class:`~bayesdrop.moments.Moments` of the output under fast
            dropout.
        """
        if not torch.is_tensor(x) or not (x.is_floating_point() or x.dtype in (torch.int64, torch.int32)):
            raise TypeError(
                "`x` must be a floating-point tensor (or int64/int32 tokens for a bd.nn.Embedding), got "
                f"{getattr(x, 'dtype', type(x).__name__)}"
            )
        self.check_inputs(x)
        if y is not None and (not torch.is_tensor(y) or y.shape[:1] != x.shape[:1]):
            raise ValueError(
                f"`y` must be a tensor with one entry per row of `x` ({x.shape[0]}), got "
                f"{tuple(y.shape) if torch.is_tensor(y) else type(y).__name__}"
            )
        plate = self.data_plate(x, y)
        with local_plate(plate):
            out = self.net(x)
            d = draws()  # a vectorised run (Predictive(parallel=True)): the draws folded into the examples' axis
            vectorised = False
            if d is not None and torch.is_tensor(out):  # (S, B, ...), also for a network that drew nothing
                out, vectorised = d.unfold(d.fold(out)), True
        if torch.is_tensor(out) or isinstance(out, Moments):
            self.check_outputs(x, out, vectorised=vectorised)
            self._check_output(out, y, out.dim() - 1 - vectorised)
        with plate:
            self.observe(out, y)
        return out

    def output_dims(self) -> tuple[int, ...] | None:
        """The numbers of dimensions of one example's network output that :meth:`distribution` scores (after the
        examples' axis, and the draws' in a vectorised run), checked by :meth:`check_outputs`; ``None`` (this
        default): any."""
        return None

    def check_outputs(self, x: torch.Tensor, out: torch.Tensor | Moments, *, vectorised: bool = False) -> None:
        """Raise ``ValueError`` (naming ``x``) where the network's outputs ``out`` for inputs ``x`` have more or fewer
        dimensions per example than :meth:`output_dims` accepts: an extra axis in ``x``, ``(N, 1, D)`` for
        ``(N, D)``, gives outputs ``(N, 1, C)`` that Pyro's data plate broadcasts against the targets ``(N,)``
        into an ``(N, N)`` log-likelihood, silently.  ``vectorised``: ``out`` leads with the draws' axis.

        :meth:`forward` checks every run, and :func:`~bayesdrop.predict` the plain pass of the weight-scaling rule.
        """
        dims = self.output_dims()
        event_dims = out.dim() - 1 - vectorised
        if dims is None or event_dims in dims:
            return
        want = " or ".join(map(str, dims))
        raise ValueError(
            f"`x`: examples of shape {tuple(x.shape[1:])} give network outputs of shape "
            f"{tuple(out.shape[out.dim() - event_dims :])} each, {event_dims} dimension{'s' if event_dims != 1 else ''}"
            f", but {type(self).__name__} scores {want} ({self._output_words()}): pass x with one example per row, in "
            "the shape the network reads (e.g. (N, D) for an MLP, not (N, 1, D))"
        )

    def _output_words(self) -> str:
        """How one example's output looks, for :meth:`check_outputs`'s message."""
        return "dimensions"

    def _check_output(self, out: torch.Tensor | Moments, y: torch.Tensor | None, event_dims: int) -> None:
        """Refuse network outputs ``out`` this likelihood cannot score, with a ``ValueError`` saying why, before
        Pyro's own checks (a shape mismatch inside the data plate).  ``event_dims``: the dimensions of one
        example's output (after the examples' and the draws').  Default: nothing to check."""

    def observe(self, out: torch.Tensor | Moments, y: torch.Tensor | None) -> None:
        """The observation site ``"obs"`` (inside the data plate): ``y ~ distribution(out)``.

        For the :class:`~bayesdrop.moments.Moments` of the output (fast dropout) the site's log density is
        ``distribution``'s averaged over the output's sigma points
        (:class:`~bayesdrop.distributions.SigmaPointAverage`), the expected log-likelihood.
        """
        if isinstance(out, Moments):
            fn: dist.TorchDistribution = SigmaPointAverage(self.distribution(out.sigma_points(out.dim() - 1)))
        else:
            fn = self.distribution(out)
        pyro.sample("obs", fn, obs=y)

    def log_likelihood(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        r"""Pointwise :math:`\log p(y_n \mid f_n)`, shape ``out``'s batch shape ``(..., N)`` (no N / B scaling)."""
        return self.distribution(out).log_prob(y)

    def target_dims(self, y: torch.Tensor | None) -> list[str]:
        """Names of the dimensions of one target ``y_n`` in ArviZ (``y``: the targets ``(N, ...)``, or None where
        the likelihood knows them without).  Default: ``y_dim_0, ...``."""
        return [f"y_dim_{i}" for i in range(0 if y is None else y.dim() - 1)]

    def check_inputs(self, x: torch.Tensor, name: str = "x") -> None:
        """Raise ``TypeError`` (naming ``name``) unless the tensor ``x`` is inputs the network can read: floating
        inputs in the dtype of the model's parameters, integer ones only for a network that embeds tokens.

        :meth:`forward` checks every batch (so a plain ``pyro.infer.SVI`` step is refused by name too), and
        :func:`~bayesdrop.fit`, :func:`~bayesdrop.predict` and :func:`~bayesdrop.evaluate` before they start; torch's
        own error comes from inside a layer, mid-trace.
        """
        param = _first_floating_parameter(self)
        if param is not None and x.is_floating_point() and x.dtype != param.dtype:
            cast_to = str(param.dtype).removeprefix("torch.")
            raise TypeError(
                f"`{name}`: x is {str(x.dtype).removeprefix('torch.')} but the model's parameters are {cast_to}: "
                f"pass x.to(torch.{cast_to}) (NumPy arrays become float32; or convert the model and guide, e.g. "
                "model.double(), guide.double())"
            )
        if not x.is_floating_point() and not any(isinstance(m, torch.nn.Embedding | Embedding) for m in self.modules()):
            raise TypeError(
                f"`{name}`: x is {str(x.dtype).removeprefix('torch.')}, integer tokens, but the network has no "
                "embedding to read them: pass x.float()"
            )

    def check_targets(self, y: torch.Tensor, name: str = "y") -> None:
        """Raise ``ValueError`` (naming ``name``) unless ``y`` is a tensor of targets this likelihood can score.

        The default accepts any tensor with a leading data dimension; subclasses check dtype and shape, so that
        a wrong target fails before training rather than broadcasting.
        """
        if not torch.is_tensor(y) or y.dim() < 1:
            raise ValueError(f"`{name}` must be a tensor with one target per example, got {type(y).__name__}")

    # -- predictions -------------------------------------------------------------------------------------------

    def predictive(self, out: torch.Tensor) -> Prediction:
        r"""The posterior predictive summary from ``S`` output draws ``out`` ``(S, N, ...)``.

        Default: the mixture's mean and standard deviation (law of total variance),

        .. math:: \mu = \frac1S \sum_s \mathbb E[y \mid f_s],\qquad
            \sigma^2 = \frac1S \sum_s \mathrm{Var}[y \mid f_s] + \frac1S \sum_s (\mathbb E[y \mid f_s] - \mu)^2.

        Returns
        -------
        tuple of torch.Tensor
            ``(mean, std)``, each of shape ``(N, *event_shape)``.
        """
        d = self.distribution(out)
        mean = d.mean.mean(0)
        var = d.variance.mean(0) + d.mean.var(0, unbiased=False)
        return mean, var.sqrt()

    def metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        r"""Metrics of the posterior predictive on labelled data, from ``S`` output draws ``out`` ``(S, N, ...)``.

        Default: ``nll``, the mean negative log predictive density of the mixture over the draws,
        :math:`-\frac1N \sum_n \log \frac1S \sum_s p(y_n \mid f_s(x_n))`
        (:func:`bayesdrop.scoring.nll`, the one definition every report uses), from
        :meth:`log_likelihood_float64`.
        """
        return {"nll": nll(self.log_likelihood_float64(out, y))}

    def log_likelihood_float64(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """:meth:`log_likelihood` computed in float64 from the network's outputs on: what the reports use
        (``metrics``' NLL, ``to_inference_data``'s ``log_likelihood`` group, which PSIS exponentiates): a float32
        log density is 1e-4 off where a Gaussian's residual is many scales.  On Apple's MPS, which has no float64,
        in the outputs' dtype."""
        return self.log_likelihood(out.to(wide_dtype(out)) if torch.is_tensor(out) else out, y)

    def train_metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-minibatch sums of the metrics :func:`~bayesdrop.fit` reports as ``train_<name>`` (per example).

        Called every step without gradients; return tensors (not floats) so the step does not synchronise with
        the device.  ``fit`` adds each name's sums over the epoch and divides by the number of training examples
        seen, so a value must be a sum over the minibatch's examples, not a mean.  Default: none.

        Parameters
        ----------
        out : torch.Tensor
            The network output of the training step on the minibatch, ``(B, *out_shape)`` (of the last particle
            where the loss takes several; the mean of the output's moments under fast dropout).
        y : torch.Tensor
            The minibatch's targets ``(B, ...)``.

        Returns
        -------
        dict of str to torch.Tensor
            ``name -> 0-d sum over the minibatch`` (e.g. ``{"acc": (out.argmax(-1) == y).sum()}`` for a classifier).
        """
        return {}

    def label_counts(self, y: torch.Tensor) -> torch.Tensor | None:
        """Counts of each class in ``y`` for classification likelihoods (``fit``'s chance-level check), else None."""
        return None

    # -- ArviZ -------------------------------------------------------------------------------------------------

    def predictive_variables(self, out: torch.Tensor) -> dict[str, tuple[list[str], torch.Tensor]]:
        """Variables for the ArviZ ``posterior_predictive`` group besides the replicated ``y``.

        Parameters
        ----------
        out : torch.Tensor
            Output draws ``(S, N, ...)``.

        Returns
        -------
        dict
            ``name -> (dims, values)``: ``values`` of shape ``(S, N, ...)`` and ``dims`` naming the dimensions
            after the draw and observation ones.  Default: the network output ``f`` with dims ``f_dim_i``.
        """
        return {"f": ([f"f_dim_{i}" for i in range(out.dim() - 2)], out)}

    def constant_data(self, x: torch.Tensor) -> dict[str, tuple[list[str], torch.Tensor]]:
        """Variables for the ArviZ ``constant_data`` group for inputs ``x`` (``name -> (dims after obs, values)``)."""
        return {}

    def coords(self) -> dict[str, Any]:
        """Coordinates of the dimensions that :meth:`predictive_variables` and :meth:`constant_data` name."""
        return {}


_ONE_CLASS = (
    "`net`: the network has 1 output, but a Classifier needs logits of at least 2 classes (a softmax over one class "
    "is 1 whatever the input): give it 2 outputs for a binary problem, or use a Regressor for one value"
)


class Classifier(Likelihood):
    r"""Categorical likelihood :math:`y_n \sim \mathrm{Categorical}(\mathrm{softmax}(f_\theta(x_n)))`.

    :meth:`predictive` returns the class probabilities averaged over the draws, ``(N, C)``; :meth:`metrics` gives
    ``acc`` and ``nll``.

    Parameters
    ----------
    net, num_data
        As in :class:`Likelihood`.
    num_classes : int, optional
        The number C of classes, the width of the network's output.  Default: inferred (:attr:`num_classes`).  The
        first run of the network checks it against the output's last dimension (a ``ValueError`` naming both).
    """

    def __init__(self, net: torch.nn.Module, num_data: int, num_classes: int | None = None):
        super().__init__(net, num_data)
        self._given_classes = None if num_classes is None else _positive_int(num_classes, "num_classes", "", low=2)
        self._seen_classes: int | None = None  # the output width of the network's first run
        self._pending_labels: dict[str, int] = {}  # largest label of each data set checked before the first run
        if self._given_classes is None and _output_width(net) == (1, True):
            raise ValueError(_ONE_CLASS)

    def _known_classes(self) -> int | None:
        """The number of classes where it is certain: given, seen at a run, or from the network's last layer where
        the order the layers run in is known; else None."""
        if self._given_classes is not None:
            return self._given_classes
        if self._seen_classes is not None:
            return self._seen_classes
        width, sure = _output_width(self.net)
        return width if sure else None

    @property
    def num_classes(self) -> int:
        """The number of classes C: ``num_classes`` where given, else the width of the network's output.

        Before the network has run, the width of its last layer with ``out_features`` or ``out_channels`` (Bayesian
        or plain): the last of a ``Sequential``, or, among the layers of a module whose ``forward`` fixes the order
        they run in, the one whose output no other layer reads (by their widths).  Where that is not certain (see
        ``_output_width``), labels are checked against the output's last dimension at the network's first run,
        which replaces the guess.
        """
        known = self._known_classes()
        if known is not None:
            return known
        width, _ = _output_width(self.net)
        if width is None:
            raise ValueError(
                "`net`: cannot tell the number of classes (no layer has out_features or out_channels); pass "
                "Classifier(..., num_classes=C)"
            )
        return width

    def output_dims(self):
        return (1,)

    def _output_words(self):
        return "logits (C,)"

    def _check_output(self, out, y, event_dims):
        """Check the width of the network's output against the number of classes (given, or inferred from a
        ``Sequential``'s last layer) and against the labels checked before its first run; record it."""
        if out.dim() == 0:
            return
        width = int(out.shape[-1])
        if width == 1:
            raise ValueError(_ONE_CLASS)
        known = self._known_classes()
        if known is not None and known != width:
            how = "given" if self._given_classes is not None else "inferred from the network's layers"
            raise ValueError(
                f"Classifier: the network's output has {width} classes (its last dimension) but num_classes is "
                f"{known} ({how}); pass Classifier(..., num_classes={width}) or give the network {known} outputs"
            )
        pending, self._pending_labels = self._pending_labels, {}  # checked once, by this run
        for name, top in pending.items():
            if top >= width:
                raise ValueError(
                    f"`{name}` must hold labels in [0, {width - 1}] (num_classes={width}, the width of the "
                    f"network's output); found labels up to {top}"
                )
        self._seen_classes = width

    def distribution(self, out):
        return LogitsCategorical(out)

    def log_likelihood(self, out, y):
        # Categorical(logits=out).log_prob(y) without building a distribution (fit calls it every step).
        if out.dim() == 2:
            return -F.cross_entropy(out, y, reduction="none")
        y = y.expand(out.shape[:-1]).unsqueeze(-1)
        return class_softmax(out, log=True).gather(-1, y).squeeze(-1)

    def check_targets(self, y, name="y"):
        if torch.is_tensor(y) and y.dim() >= 2 and y.shape[-1] == 1:  # Pyro would broadcast (N, 1) against (N,)
            raise ValueError(
                f"`{name}`: class labels must have shape (N,), got {tuple(y.shape)} (squeeze the last dimension)"
            )
        known = self._known_classes()
        check_labels(y, known, name=name)
        if known is None and y.numel():  # checked against the network's output at its first run
            self._pending_labels[name] = int(y.max())

    def predictive(self, out):
        if len(out) == 1:  # one draw (the weight-scaling rule): no mean to take
            return class_softmax(out[0]).contiguous()
        return class_softmax(out).mean(0)

    def metrics(self, out, y):
        return {"acc": accuracy(class_softmax(out), y), **super().metrics(out, y)}

    def train_metrics(self, out, y):
        return {"acc": (out.argmax(-1) == y).sum()}

    def label_counts(self, y):
        return torch.bincount(y, minlength=self.num_classes)

    def predictive_variables(self, out):
        return {"probs": (["class"], class_softmax(out))}

    def coords(self):
        return {"class": list(range(self.num_classes))}


_SIMD_BYTES = {"AVX512": 64, "AVX2": 32}  #: bytes per SIMD register, by torch's CPU capability (others: 32)


@functools.cache
def _simd_bytes() -> int:
    """The bytes of one SIMD register of torch's CPU kernels here."""
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "DEFAULT")()
    return _SIMD_BYTES.get(capability, 32)


def class_softmax(out: torch.Tensor, *, log: bool = False) -> torch.Tensor:
    """Class probabilities of logits ``out`` ``(..., C)``: ``out.softmax(-1)`` (``out.log_softmax(-1)`` with
    ``log``), the same values to float round-off, and on a CPU faster where there are few classes.

    torch's CPU kernel over the last dimension works one SIMD register at a time along each row; a row shorter than
    a register (fewer than 16 float32 classes with AVX-512, 8 with AVX2) leaves it mostly empty, and the same
    softmax over the leading dimension runs 10-15 times faster (logits of 100 networks on 360 inputs and 10
    classes: 7 ms against 0.7 ms on one thread; ``docs/architecture.md``).  There the classes are moved first, and
    the result is a view of that layout (its classes the slowest axis).

    Parameters
    ----------
    out : torch.Tensor
        Logits, classes last.
    log : bool
        Log-probabilities instead.

    Returns
    -------
    torch.Tensor
        The probabilities (log-probabilities), ``out``'s shape.
    """
    fn = torch.log_softmax if log else torch.softmax
    if out.device.type == "cpu" and out.dtype in (torch.float32, torch.float64) and out.dim() > 1:
        if out.shape[-1] * out.element_size() < _simd_bytes():
            return fn(out.movedim(-1, 0), 0).movedim(0, -1)
    return fn(out, -1)


def _first_floating_parameter(module: torch.nn.Module) -> torch.Tensor | None:
    """The first floating parameter of ``module`` in the order of ``module.parameters()``, found by a walk of the
    module tree that stops there (``parameters()`` builds the name of every module it passes, about 15 of the
    60 microseconds of input checks that a half-millisecond ``rule="weight-scaling"`` prediction made on digits)."""
    stack = [module]
    while stack:
        m = stack.pop()
        for p in m._parameters.values():
            if p is not None and p.is_floating_point():
                return p
        stack.extend(c for c in reversed(m._modules.values()) if c is not None)
    return None


def _positive_int(value: Any, name: str, what: str, low: int = 1) -> int:
    """``value`` as an int >= ``low`` (:func:`~bayesdrop.checks.integer`), every refusal a ``ValueError``
    naming ``name`` and ``what`` it is (the likelihoods' checks have always raised ``ValueError``)."""
    try:
        return integer(value, name, what, low)
    except TypeError as err:
        raise ValueError(str(err)) from None


def _keeps_width(module: torch.nn.Module) -> bool:
    """Whether ``module`` returns its input's shape: an activation, a dropout, a ``LayerNorm``, an ``Identity``."""
    from .nn import Dropout

    elementwise = type(module).__module__ == "torch.nn.modules.activation"
    if elementwise and not isinstance(module, torch.nn.MultiheadAttention):
        return True
    kinds = (torch.nn.modules.dropout._DropoutNd, torch.nn.LayerNorm, torch.nn.Identity, Dropout)
    return isinstance(module, kinds)


def _output_width(net: torch.nn.Module) -> tuple[int | None, bool]:
    """The width of ``net``'s output by its layers, and whether that is certain.

    A layer is a module with an int ``out_features`` (its output's last dimension: certain) or ``out_channels``
    (a convolution's, whose output's last dimension depends on what follows: not certain).  A ``Sequential`` runs
    its modules in order: its width is its last layer's, certain where that is and only activations, dropouts and
    the like follow it.  Another module's ``forward`` may run its layers in any order and reshape their outputs:
    the width, never certain, is that of its layers where they agree; else that of the layer whose output no other
    reads (its ``out_features`` no other's ``in_features``), and failing one such, of the last layer registered.
    """
    for attr, sure in (("out_features", True), ("out_channels", False)):
        n = getattr(net, attr, None)
        if isinstance(n, int) and not isinstance(n, bool):
            return n, sure
    children = list(net.children())
    if isinstance(net, torch.nn.Sequential):
        for i in reversed(range(len(children))):
            width, sure = _output_width(children[i])
            if width is not None:
                return width, sure and all(_keeps_width(c) for c in children[i + 1 :])
        return None, False
    found = [(child, *_output_width(child)) for child in children]
    found = [(c, w, s) for c, w, s in found if w is not None]
    if not found:
        return None, False
    widths = {w for _, w, _ in found}
    if len(widths) == 1:
        return found[-1][1], False

    def reads(module: torch.nn.Module) -> int | None:
        """The width of a layer's input (``in_features`` / ``in_channels``), else None."""
        for attr in ("in_features", "in_channels"):
            n = getattr(module, attr, None)
            if isinstance(n, int):
                return n
        return None

    ends = [w for c, w, _ in found if all(reads(o) != w for o, _, _ in found if o is not c)]
    return (ends[0] if len(ends) == 1 else found[-1][1]), False


def _positive_number(value: Any, name: str, what: str) -> float:
    """``value`` as a float (:func:`~bayesdrop.checks.real_number`: a ``TypeError`` naming ``name`` and
    ``what`` it is unless a number), finite and > 0 (else a ``ValueError``)."""
    v = real_number(value, name, what)
    if not 0 < v < math.inf:
        raise ValueError(f"`{name}` must be a finite number > 0, got {value!r}")
    return v


def model_precision(p: float, length_scale: float, weight_decay: float, num_data: int) -> float:
    r"""Gal & Ghahramani's (2016) model precision :math:`\tau` of MC dropout regression, from the dropout rate, the
    prior length-scale and the weight decay.

    With dropout rate p (their :math:`1 - p`: the formula's p is the keep probability), prior length-scale l and
    weight decay :math:`\lambda` (the coefficient of :math:`\lVert W \rVert^2` in the per-example loss),

    .. math:: \tau = \frac{(1 - p)\, l^2}{2 N \lambda},

    and the predictive variance of an output is

    .. math:: \mathrm{Var}[y^*] \approx \tau^{-1} + \frac1T \sum_{t=1}^T \hat y_t^2 - \Big(\frac1T
        \sum_{t=1}^T \hat y_t\Big)^2,

    which is what :meth:`Regressor.predictive` returns (squared) for ``Regressor(..., precision=tau)``.

    Parameters
    ----------
    p : float
        Dropout rate, in [0, 1).
    length_scale : float
        Prior length-scale l > 0.
    weight_decay : float
        :math:`\lambda` > 0.
    num_data : int
        N, the training-set size.

    Returns
    -------
    float
        :math:`\tau`.

    Examples
    --------
    >>> tau = bd.likelihoods.model_precision(0.1, length_scale=1e-2, weight_decay=1e-6, num_data=400)
    >>> model = bd.Regressor(net, num_data=400, precision=tau)  # doctest: +SKIP
    """
    for name, v, lo in (("length_scale", length_scale, 0.0), ("weight_decay", weight_decay, 0.0)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= lo:
            raise ValueError(f"`{name}` must be a finite number > 0, got {v!r}")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise ValueError(f"`p` must be a dropout rate in [0, 1), got {p!r}")
    num_data = _positive_int(num_data, "num_data", "")
    return (1 - p) * length_scale**2 / (2 * num_data * weight_decay)


class Regressor(Likelihood):
    r"""Gaussian likelihood :math:`y_n \sim \mathcal N(f_\theta(x_n), \sigma^2)`, one value or a forecast of
    ``horizon`` values per example.

    With ``horizon=None`` the network has one output and ``y`` is ``(N,)``.  With ``horizon=H`` (multi-step
    forecasting, e.g. :func:`bayesdrop.data.load` ``("co2")``) the network has H outputs, ``y`` is ``(N, H)``, each
    step h has its own noise :math:`\sigma_h`, and an example's log-likelihood is the sum over its H steps,
    :math:`\sum_h \log \mathcal N(y_{nh}; f_{nh}, \sigma_h^2)`; ArviZ names the step dimension ``time``.

    :math:`\sigma` (Gal & Ghahramani's :math:`\tau^{-1/2}`) is a point estimate when ``learn_noise`` is true.
    :meth:`predictive` returns ``(mean, std)``, ``(N,)`` or ``(N, H)``, the std including the observation noise
    (Gal & Ghahramani 2016, eq. 8-9); :meth:`metrics` gives ``rmse`` (over every value) and ``nll`` (per example).

    Parameters
    ----------
    net, num_data
        As in :class:`Likelihood`.
    noise_scale : float
        (Initial) observation noise standard deviation, > 0.  A fixed model precision :math:`\tau` (Gal &
        Ghahramani 2016; :func:`model_precision`) is ``noise_scale=tau ** -0.5`` with ``learn_noise=False``.
    learn_noise : bool
        Learn ``noise_scale`` by maximising the ELBO.
    horizon : int or None
        Number H of values forecast per example; None for one value.
    precision : float or None
        A fixed model precision :math:`\tau` (:func:`model_precision` computes Gal & Ghahramani's from the dropout
        rate, the prior length-scale and the weight decay): the noise is :math:`\tau^{-1/2}`, not learned, and
        ``noise_scale`` / ``learn_noise`` are not used.
    """

    def __init__(
        self,
        net: torch.nn.Module,
        num_data: int,
        noise_scale: float = 0.1,
        learn_noise: bool = True,
        horizon: int | None = None,
        precision: float | None = None,
    ):
        super().__init__(net, num_data)
        if not isinstance(learn_noise, bool):
            raise TypeError(f"`learn_noise` must be True or False, got {learn_noise!r}")
        if precision is not None:  # Gal & Ghahramani's fixed model precision tau (model_precision)
            tau = _positive_number(precision, "precision", "the model precision tau, see model_precision")
            noise_scale, learn_noise = tau**-0.5, False
        noise_scale = _positive_number(noise_scale, "noise_scale", "the observation noise's std")
        if horizon is not None:
            try:
                horizon = _positive_int(horizon, "horizon", "")
            except ValueError:
                raise ValueError(
                    f"`horizon` must be None or a positive int (values forecast per example), got {horizon!r}"
                ) from None
        self.horizon = horizon
        log_noise = torch.full(() if horizon is None else (horizon,), math.log(noise_scale))
        if learn_noise:
            self.log_noise = torch.nn.Parameter(log_noise)
        else:
            self.register_buffer("log_noise", log_noise)

    @property
    def noise_scale(self) -> torch.Tensor:
        r""":math:`\sigma`: a scalar, or ``(horizon,)``."""
        return self.log_noise.exp()

    def output_dims(self):
        return (0, 1) if self.horizon is None else (1,)

    def _output_words(self):
        return "one value, () or (1,)" if self.horizon is None else f"a forecast, ({self.horizon},)"

    def _check_output(self, out, y, event_dims):
        """With ``horizon=None``, refuse a network with several outputs per example (``(..., N, W)``, ``W > 1``),
        which Pyro would report as a shape mismatch inside the data plate."""
        width = out.shape[-1]
        if self.horizon is None and event_dims >= 1 and width != 1:
            targets = f"`y` of shape {tuple(y.shape)}" if torch.is_tensor(y) else "targets of shape (N,)"
            raise ValueError(
                f"Regressor(horizon=None) predicts one value per example, {targets}, but the network has {width} "
                f"outputs: give it 1 output, or for a forecast of {width} values pass Regressor(..., horizon={width}) "
                f"and targets of shape (N, {width})"
            )

    def distribution(self, out):
        if self.horizon is None:
            return dist.Normal(out.squeeze(-1), self.noise_scale)
        if out.shape[-1] != self.horizon:
            raise ValueError(
                f"Regressor(horizon={self.horizon}) needs a network with {self.horizon} outputs, got {out.shape[-1]}"
            )
        return dist.Normal(out, self.noise_scale).to_event(1)

    def check_targets(self, y, name="y"):
        want = "(N,)" if self.horizon is None else f"(N, {self.horizon})"
        ok = torch.is_tensor(y) and y.is_floating_point()
        ok = ok and (y.dim() == 1 if self.horizon is None else y.dim() == 2 and y.shape[1] == self.horizon)
        if not ok:
            shape = tuple(y.shape) if torch.is_tensor(y) else type(y).__name__
            if torch.is_tensor(y) and not y.is_floating_point():  # the dtype is what is wrong: say so
                shape = f"{str(y.dtype).removeprefix('torch.')} {shape} (pass y.float())"
            squeeze = self.horizon is None and torch.is_tensor(y) and y.dim() == 2 and y.shape[1] == 1
            raise ValueError(
                f"`{name}`: regression targets must be a floating-point tensor of shape {want}, got {shape}"
                + (" (squeeze the last dimension)" if squeeze else "")
                + (
                    " (a forecast of several values needs Regressor(..., horizon=H))"
                    if self.horizon is None and torch.is_tensor(y) and y.dim() == 2 and y.shape[1] > 1
                    else ""
                )
            )

    def metrics(self, out, y):
        return {"rmse": rmse(self.distribution(out).mean, y), **super().metrics(out, y)}

    def target_dims(self, y):
        return [] if self.horizon is None else ["time"]

    def predictive_variables(self, out):
        return {"mu": (self.target_dims(None), self.distribution(out).mean)}

    def constant_data(self, x):
        n = len(x)
        sigma = self.noise_scale.detach()
        data = {"noise_scale": (self.target_dims(None), sigma.expand(n, *sigma.shape))}
        if x.dim() == 2:
            data["x"] = (["feature"], x)
        return data

    def coords(self):
        return {} if self.horizon is None else {"time": list(range(1, self.horizon + 1))}
