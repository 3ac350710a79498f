"""How good a trained model is: test ELBO, IWAE and grid log-likelihoods, posterior means, the
latent-quality metrics (active units, linear probe, k-NN, MIG, total correlation), and
`npvae evaluate` on a run directory (results filed in its evaluation.json)."""
from .elbo import elbo_per_image, evaluate_elbo, summarize
from .grid import grid_log_integral, model_grid_log_likelihood
from .iwae import (IWAE_STREAMS, LOG_2PI, IWAEEstimate, evaluate_iwae, iwae_log_likelihood, log_mean_exp,
                   log_standard_normal, model_iwae, standard_error)
from .latents import posterior_means, posterior_moments
from .metrics import (ACTIVE_THRESHOLD, active_units, latent_metrics, metrics_rows,
                      mutual_information_gap, total_correlation)
from .neighbours import knn_accuracy
from .probe import linear_probe
from .run import evaluate_run
from .sharded import cluster_iwae, sharded_iwae

__all__ = ["elbo_per_image", "evaluate_elbo", "summarize", "grid_log_integral",
           "model_grid_log_likelihood", "IWAE_STREAMS", "LOG_2PI", "IWAEEstimate", "evaluate_iwae",
           "iwae_log_likelihood", "log_mean_exp", "log_standard_normal", "model_iwae",
           "standard_error", "posterior_means", "posterior_moments", "evaluate_run", "ACTIVE_THRESHOLD",
           "active_units", "latent_metrics", "metrics_rows", "mutual_information_gap",
           "total_correlation", "knn_accuracy", "linear_probe", "sharded_iwae", "cluster_iwae"]
