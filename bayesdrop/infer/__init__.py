"""Training, prediction and checkpoints: the inference side of bayesdrop.

For users who train and use a model and guide.  :func:`fit` (:mod:`~bayesdrop.infer.train`) trains by SVI with the
:class:`MeanFieldELBO` (:mod:`~bayesdrop.infer.elbo`) and per-epoch :mod:`~bayesdrop.infer.callbacks`;
:func:`predict` and :func:`evaluate` (:mod:`~bayesdrop.infer.predict`) give the posterior predictive, through plain
torch modules where the networks allow it (:mod:`~bayesdrop.infer.plain`);
:func:`save_checkpoint` and :func:`load_checkpoint` (:mod:`~bayesdrop.infer.checkpoint`) store a run without
pickled code; ``fit(checkpoint=..., checkpoint_every=k)`` writes them as it trains (and on SIGINT / SIGTERM, raising
:class:`FitInterrupted`), ``fit(resume=...)`` continues one.

Example
-------
>>> result = bd.infer.fit(model, guide, data.train, epochs=20, callbacks=[bd.infer.Checkpoint("run.pt", every=5)])
>>> bd.infer.evaluate(model, guide, data.test)
"""

from ..handlers import KLScale
from . import callbacks
from .boosting import DropoutBoostingELBO
from .callbacks import (
    CHANCE_EPOCHS,
    Callback,
    Checkpoint,
    CollapseWarning,
    EpochFunction,
    TrainState,
)
from .checkpoint import load_checkpoint, save_checkpoint
from .elbo import MeanFieldELBO
from .predict import RULES, evaluate, output_draws, predict
from .resume import FitInterrupted
from .train import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_LR,
    LR_WARMUP_FAN_IN,
    LR_WARMUP_FRACTION,
    FitResult,
    fit,
    input_fan_in,
    param_groups,
    resolve_device,
    resolve_kl_warmup,
    resolve_lr_warmup,
)

__all__ = [
    "callbacks",
    "Callback",
    "Checkpoint",
    "EpochFunction",
    "TrainState",
    "CollapseWarning",
    "CHANCE_EPOCHS",
    "MeanFieldELBO",
    "DropoutBoostingELBO",
    "KLScale",
    "fit",
    "FitResult",
    "FitInterrupted",
    "predict",
    "evaluate",
    "output_draws",
    "RULES",
    "resolve_device",
    "save_checkpoint",
    "load_checkpoint",
    "DEFAULT_LR",
    "DEFAULT_BATCH_SIZE",
    "resolve_kl_warmup",
    "LR_WARMUP_FRACTION",
    "LR_WARMUP_FAN_IN",
    "resolve_lr_warmup",
    "input_fan_in",
    "param_groups",
]
