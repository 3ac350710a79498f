"""KL weight schedules (paper eq. 31).

Epochs are counted from 1. With the paper's ``beta(t) = min(1, t / T_warmup)`` the first
epoch therefore trains with beta = 1/T_warmup (0.1 for T_warmup = 10) and epochs
T_warmup, T_warmup+1, ... with the full weight. ``beta_max`` scales the whole curve
(beta-VAE); ``warmup_epochs = 0`` means a constant ``beta_max`` from the start.

The ``step`` schedule ramps linearly per optimisation step instead of per epoch:
``beta = beta_max * min(1, step / (T_warmup * steps_per_epoch))``, step counted from 1.
"""

SCHEDULES = ("epoch", "step")


def kl_weight(epoch, warmup_epochs, beta_max=1.0, schedule="epoch", step=None, steps_per_epoch=None):
    """beta for ``epoch`` (1-based), or for global ``step`` (1-based) with ``schedule='step'``."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown KL schedule {schedule!r}; expected one of {SCHEDULES}")
    if warmup_epochs < 0:
        raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
    if warmup_epochs == 0:
        return float(beta_max)
    if schedule == "epoch":
        return float(beta_max) * min(1.0, epoch / warmup_epochs)
    return float(beta_max) * min(1.0, step / (warmup_epochs * steps_per_epoch))
