"""How good a latent space is, from the posteriors of a data set: active units, mutual
information gap, total correlation, and (with npvae.evaluation.probe and .neighbours) how
much of the label a linear probe and k nearest neighbours read off the means.

Every function takes plain arrays: ``mu`` and ``logvar`` (N, d) are the encoder's outputs
q(z|x) = N(mu, diag(exp(logvar))) for N images, ``labels`` (N,) non-negative integers.
:func:`latent_metrics` computes all of them for a model's training and test sets, as
`npvae evaluate RUN_DIR --metrics` files them in evaluation.json under ``metrics``.
"""
import numpy as np

from .neighbours import KNN_K, knn_accuracy
from .probe import linear_probe

ACTIVE_THRESHOLD = 0.01          # Burda et al. (2016)
MIG_BINS = 20                    # disentanglement_lib's histogram estimator


def active_units(mu, threshold=ACTIVE_THRESHOLD):
    """Burda et al. (2016): dimension u is active when A_u = Cov_x(E_q[z_u | x]) > threshold.

    ``mu`` (N, d) holds E_q[z | x] = mu(x). Returns (A (d,) float64, active mask (d,) bool).
    The variance is the population one (divided by N), computed in float64.
    """
    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 2 or len(mu) == 0:
        raise ValueError(f"active_units: expected means (N, d) with N >= 1, got {mu.shape}")
    variances = np.var(mu, axis=0)
    return variances, variances > threshold


def histogram_discretize(values, bins=MIG_BINS):
    """Each column of ``values`` (N, d) cut into ``bins`` equal-width bins over its own range,
    as disentanglement_lib's ``_histogram_discretize``: (N, d) ints in 0..bins-1."""
    values = np.asarray(values, dtype=np.float64)
    out = np.empty(values.shape, dtype=np.int64)
    for j in range(values.shape[1]):
        edges = np.histogram_bin_edges(values[:, j], bins)
        # the left edges of bins 2..bins; the column's maximum lands in the last bin
        out[:, j] = np.digitize(values[:, j], edges[1:-1])
    return out


def discrete_mutual_information(a, b):
    """I(a; b) in nats of two (N,) arrays of non-negative integer codes, from their joint counts
    (the plug-in estimator, as sklearn.metrics.mutual_info_score)."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    n = len(a)
    if n == 0 or len(b) != n:
        raise ValueError(f"discrete_mutual_information: need two equally long non-empty arrays, "
                         f"got {len(a)} and {len(b)}")
    _, a = np.unique(a, return_inverse=True)
    _, b = np.unique(b, return_inverse=True)
    joint = np.bincount(a * (b.max() + 1) + b, minlength=(a.max() + 1) * (b.max() + 1))
    joint = joint.reshape(a.max() + 1, b.max() + 1) / n
    outer = joint.sum(axis=1, keepdims=True) * joint.sum(axis=0, keepdims=True)
    seen = joint > 0
    return float(max(np.sum(joint[seen] * np.log(joint[seen] / outer[seen])), 0.0))


def discrete_entropy(labels):
    """H(labels) in nats, from the counts."""
    return discrete_mutual_information(labels, labels)


def mutual_information_gap(mu, labels, bins=MIG_BINS):
    """Mutual information gap (Chen et al. 2018) of the latent means with the label:

        MIG = (I(z_(1); y) - I(z_(2); y)) / H(y)

    where z_(1), z_(2) are the dimensions sharing the most and second-most information with
    y, each dimension discretised into ``bins`` equal-width bins (disentanglement_lib's
    histogram estimator). With one label as the only factor this is disentanglement_lib's
    MIG. Returns a dict: ``mig`` (None when undefined: one latent dimension, or one class),
    ``mutual_information`` per dimension (nats), ``label_entropy`` (nats), ``note``.
    """
    mu = np.asarray(mu)
    labels = np.asarray(labels)
    codes = histogram_discretize(mu, bins)
    information = [discrete_mutual_information(codes[:, j], labels) for j in range(mu.shape[1])]
    entropy = discrete_entropy(labels)
    result = {"mig": None, "mutual_information": information, "label_entropy": entropy,
              "bins": bins, "note": ""}
    if mu.shape[1] < 2:
        result["note"] = "undefined for a 1-D latent: there is no second dimension to take the gap to"
    elif entropy <= 0:
        result["note"] = "undefined: the labels hold a single class (H(y) = 0)"
    else:
        best, second = sorted(information, reverse=True)[:2]
        result["mig"] = (best - second) / entropy
    return result


def aggregate_posterior_covariance(mu, logvar=None):
    """The covariance of the aggregate posterior q(z) = mean_x q(z|x), a mixture of the N
    Gaussians: Cov(mu) + E_x[diag(sigma^2(x))]. Without ``logvar`` only Cov(mu) (d, d)."""
    mu = np.asarray(mu, dtype=np.float64)
    covariance = np.atleast_2d(np.cov(mu, rowvar=False, bias=True))
    if logvar is not None:
        covariance = covariance + np.diag(np.mean(np.exp(np.asarray(logvar, dtype=np.float64)), axis=0))
    return covariance


def gaussian_total_correlation(covariance):
    """TC of N(m, Sigma) = KL(N(m, Sigma) || prod_j N(m_j, Sigma_jj))
    = 1/2 (sum_j log Sigma_jj - log det Sigma), in nats; 0 exactly when Sigma is diagonal.
    Returns None when Sigma is singular (a dimension with no variance at all)."""
    covariance = np.asarray(covariance, dtype=np.float64)
    sign, log_det = np.linalg.slogdet(covariance)
    diagonal = np.diag(covariance)
    if sign <= 0 or np.any(diagonal <= 0):
        return None
    return float(max(0.5 * (np.sum(np.log(diagonal)) - log_det), 0.0))


def total_correlation(mu, logvar):
    """Total correlation of the aggregate posterior q(z) under a Gaussian fit: the Gaussian
    with q(z)'s covariance, Cov(mu) + E_x[diag(sigma^2)] (not the means' covariance alone:
    each q(z|x) adds its own independent spread). Unsupervised: how far the latent
    dimensions are from independent. Nats; None when the covariance is singular."""
    return gaussian_total_correlation(aggregate_posterior_covariance(mu, logvar))


def split_metrics(mu, logvar, labels=None, threshold=ACTIVE_THRESHOLD, bins=MIG_BINS):
    """Active units, total correlation and (with ``labels``) MIG of one data set's posteriors."""
    variances, active = active_units(mu, threshold)
    result = {"images": int(len(mu)), "active_units": int(active.sum()), "threshold": threshold,
              "variances": variances.tolist(), "total_correlation": total_correlation(mu, logvar)}
    if labels is not None:
        result.update(mutual_information_gap(mu, labels, bins))
    return result


def latent_metrics(train, test, kind="vae", seed=0, k=KNN_K):
    """Every metric of the module for a model's posteriors on its training and test sets.

    ``train``, ``test``: (mu (N, d), logvar (N, d), labels (N,) ints or None). Active units,
    total correlation and MIG for each split; the linear probe trained on the training means
    and scored on the test means; k-NN of the test means among the training means.
    For a CVAE (``kind="cvae"``) the encoder is given the label, so z is meant to hold only
    style: a probe accuracy near chance is the claim of the paper's section 5.3.3, measured.
    """
    (train_mu, train_logvar, train_labels), (test_mu, test_logvar, test_labels) = train, test
    result = {"kind": kind, "latent_dim": int(np.shape(train_mu)[1]), "seed": seed,
              "train": split_metrics(train_mu, train_logvar, train_labels),
              "test": split_metrics(test_mu, test_logvar, test_labels), "notes": []}
    if train_labels is None or test_labels is None:
        result["notes"].append("no labels: linear probe, k-NN and MIG need them and were skipped")
        return result
    result["linear_probe"] = linear_probe(train_mu, train_labels, test_mu, test_labels, seed=seed)
    result["knn"] = {"k": k, "accuracy": knn_accuracy(train_mu, train_labels, test_mu, test_labels, k)}
    if result["test"]["note"]:
        result["notes"].append(f"MIG {result['test']['note']}")
    if kind == "cvae":
        result["notes"].append(
            "CVAE: the encoder and decoder are given the label, so z should hold only style; the "
            "probe and k-NN accuracies measure how much label information z still keeps (chance "
            f"= {result['linear_probe']['chance']:.3f}, the most frequent test class)")
    return result


def _number(value, digits=3):
    return "undefined" if value is None else f"{value:.{digits}f}"


def metrics_rows(result):
    """(metric, train, test) rows of strings: the table `npvae evaluate --metrics` prints and the
    report shows."""
    train, test = result["train"], result["test"]
    d = result["latent_dim"]
    rows = [("active units (Var_x mu_u > %g)" % train["threshold"],
             f"{train['active_units']} of {d}", f"{test['active_units']} of {d}"),
            ("total correlation, Gaussian fit of q(z) (nats)",
             _number(train["total_correlation"], 4), _number(test["total_correlation"], 4))]
    if "mig" in test:
        rows.append((f"MIG with the label ({test['bins']} bins)", _number(train["mig"]), _number(test["mig"])))
    if "linear_probe" in result:
        probe = result["linear_probe"]
        rows.append(("linear-probe accuracy (trained on train means)",
                     _number(probe["train_accuracy"]), _number(probe["accuracy"])))
        rows.append(("chance (most frequent class)", "", _number(probe["chance"])))
        rows.append((f"{result['knn']['k']}-NN accuracy (test among train means)", "",
                     _number(result["knn"]["accuracy"])))
    return rows
