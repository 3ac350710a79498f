"""log p(x) by direct integration, for a 2-D latent: the check on the IWAE estimate.

With a 2-D latent, log p(x) = log int p(x|z) p(z) dz can be computed directly by the
midpoint rule on a fine grid: :func:`grid_log_integral` (generic) and
:func:`model_grid_log_likelihood`, which integrates over mu +- 8 sigma of q(z|x) and adds,
from a coarser grid over the prior's region, the mass outside that box.
"""
import math
from dataclasses import dataclass

import numpy as np

from .iwae import log_standard_normal, posterior

WIDENINGS = 3            # the box around q(z|x) doubles at most this often


@dataclass
class GridIntegral:
    """log of the integral, the log-integrand's peak and its largest value on the box's edge,
    and the mean and covariance of the normalised integrand (for p(x|z) p(z): the posterior's)."""
    log_integral: float
    peak: float
    edge: float
    points: int
    mean: np.ndarray = None
    cov: np.ndarray = None


def grid_log_integral(log_f, lo, hi, size=400, batch_size=4096, exclude=None):
    """log int_box exp(log_f(z)) dz over the 2-D box [lo, hi], by the midpoint rule.

    ``log_f((P, 2) float64) -> (P,)``; the box is cut into size x size cells and log_f is
    evaluated at their centres, ``batch_size`` points per call; log-sum-exp plus the log of
    the cell area gives the integral. ``exclude=(lo2, hi2)`` leaves out the cells whose
    centres fall inside a second box (to add up disjoint regions).
    """
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    if lo.shape != (2,) or hi.shape != (2,) or np.any(hi <= lo) or size < 2:
        raise ValueError(f"grid_log_integral: need 2-D lo < hi and size >= 2, got {lo}, {hi}, {size}")
    step = (hi - lo) / size
    axes = [lo[i] + step[i] * (np.arange(size) + 0.5) for i in range(2)]
    g0, g1 = np.meshgrid(*axes, indexing="ij")
    points = np.stack([g0.ravel(), g1.ravel()], axis=1)
    edge_mask = np.zeros((size, size), dtype=bool)
    edge_mask[[0, -1], :] = edge_mask[:, [0, -1]] = True
    edge_mask = edge_mask.ravel()
    if exclude is not None:
        lo2, hi2 = np.asarray(exclude[0]), np.asarray(exclude[1])
        keep = ~np.all((points >= lo2) & (points <= hi2), axis=1)
        points, edge_mask = points[keep], edge_mask[keep]
    if len(points) == 0:
        return GridIntegral(-math.inf, -math.inf, -math.inf, 0)
    values = np.concatenate([np.asarray(log_f(points[s:s + batch_size]), dtype=np.float64)
                             for s in range(0, len(points), batch_size)])
    peak = float(values.max())
    weights = np.exp(values - peak)
    total = np.sum(weights)
    log_integral = peak + math.log(total) + math.log(step[0] * step[1])
    edge = float(values[edge_mask].max()) if edge_mask.any() else -math.inf
    mean = weights @ points / total
    centred = points - mean
    cov = (centred * weights[:, None]).T @ centred / total
    return GridIntegral(log_integral, peak, edge, len(points), mean, cov)


def model_grid_log_likelihood(model, x, label=None, size=400, width=8.0, prior_radius=8.0,
                              prior_size=120, batch_size=2000, min_edge_drop=20.0):
    """log p(x) of one float image x (1, 1, 28, 28) under a model with a 2-D latent, by a grid.

    A size x size grid spans mu +- ``width`` sigma of q(z|x) (widened, up to 8-fold, while the
    log-integrand on its edge is within ``min_edge_drop`` nats of its peak); a coarser prior_size^2 grid over
    [-prior_radius, prior_radius]^2 (prior mass outside: about 1e-15 for 8) adds the
    integrand's mass outside that box, as a check that nothing is missed. Returns a dict:
    ``log_px`` (both parts), ``log_px_local`` (the box alone), ``log_outside`` and
    ``edge_drop`` (how far below its peak the log-integrand is on the box's edge), ``width``
    (the half-width of the box integrated, in sigmas) and ``edge_ok`` (False when even the
    widest box's edge was within ``min_edge_drop`` of the peak: some mass may be missing).
    """
    if model.latent_dim != 2:
        raise ValueError(f"grid integration needs a 2-D latent, the model has {model.latent_dim}")
    labels = None if label is None else np.asarray(label).reshape(1)
    mu, _, sigma = posterior(model, x, labels)
    mu, sigma = mu[0], sigma[0]
    x_rep = {}

    def log_f(z):
        p = len(z)
        if p not in x_rep:
            x_rep[p] = (np.repeat(x, p, axis=0), None if labels is None else np.repeat(labels, p))
        target, labels_rep = x_rep[p]
        logits = model.decode_logits(z.astype(model.dtype), labels_rep)
        return model.log_likelihood(logits, target) + log_standard_normal(z)

    # The box must hold the true posterior, which can be wider than q: widen it until the
    # log-integrand on its edge is at least ``min_edge_drop`` nats below the peak. ``width``
    # stays the box actually integrated, whether or not that ever happens.
    for attempt in range(WIDENINGS + 1):
        lo, hi = mu - width * sigma, mu + width * sigma
        local = grid_log_integral(log_f, lo, hi, size, batch_size)
        edge_ok = local.peak - local.edge >= min_edge_drop
        if edge_ok or attempt == WIDENINGS:
            break
        width *= 2
    outside = grid_log_integral(log_f, [-prior_radius] * 2, [prior_radius] * 2, prior_size,
                                batch_size, exclude=(lo, hi))
    return {"log_px": float(np.logaddexp(local.log_integral, outside.log_integral)),
            "log_px_local": local.log_integral, "log_outside": outside.log_integral,
            "edge_drop": local.peak - local.edge, "edge_ok": bool(edge_ok), "width": width,
            "mu": mu.tolist(),
            "sigma": sigma.tolist(), "posterior_mean": local.mean.tolist(),
            "posterior_sd": np.sqrt(np.diag(local.cov)).tolist(),
            "points": local.points + outside.points}
