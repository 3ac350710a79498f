"""Latent-quality metrics on synthetic latents whose answer is known: a noisy copy of the label
(probe and k-NN near 1, a large MIG), pure noise (chance, MIG near 0), independent Gaussian
dimensions (total correlation 0) and correlated ones (its closed form)."""
import math

import numpy as np
import pytest

from npvae.evaluation.metrics import (active_units, aggregate_posterior_covariance,
                                      discrete_entropy, discrete_mutual_information,
                                      gaussian_total_correlation, histogram_discretize,
                                      latent_metrics, metrics_rows, mutual_information_gap,
                                      total_correlation)
from npvae.evaluation.neighbours import knn_accuracy
from npvae.evaluation.probe import linear_probe, standardise

CLASSES = 10


def labelled(n, seed):
    return np.random.default_rng(seed).integers(0, CLASSES, n)


def label_copy(labels, d, seed, noise=0.1):
    """A d-D latent whose first dimension is the label plus a little noise, the rest noise."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((len(labels), d))
    z[:, 0] = labels + noise * rng.standard_normal(len(labels))
    return z


def blobs(labels, d, seed, spread=0.2):
    """Each class a tight Gaussian blob around its own random centre: linearly separable."""
    centres = np.random.default_rng(12345).standard_normal((CLASSES, d)) * 3
    return centres[labels] + spread * np.random.default_rng(seed).standard_normal((len(labels), d))


# -- active units --------------------------------------------------------------------------
def test_active_units_counts_dimensions_whose_mean_varies():
    rng = np.random.default_rng(0)
    mu = np.stack([rng.normal(0, 1, 5000), rng.normal(0, 0.05, 5000), np.full(5000, 0.7),
                   rng.normal(0, 0.2, 5000)], axis=1)
    variances, active = active_units(mu)
    np.testing.assert_allclose(variances, [1, 0.0025, 0, 0.04], rtol=0.1, atol=1e-12)
    assert active.tolist() == [True, False, False, True]
    assert active_units(mu, threshold=0.001)[1].tolist() == [True, True, False, True]


def test_active_units_rejects_an_empty_set():
    with pytest.raises(ValueError, match="N >= 1"):
        active_units(np.zeros((0, 2)))


# -- mutual information gap -----------------------------------------------------------------
def test_histogram_discretize_is_disentanglement_libs():
    values = np.array([[0.0], [0.49], [0.5], [0.99], [1.0]])
    # two equal-width bins over [0, 1]; the maximum falls in the last bin
    assert histogram_discretize(values, bins=2)[:, 0].tolist() == [0, 0, 1, 1, 1]
    codes = histogram_discretize(np.random.default_rng(0).standard_normal((1000, 3)))
    assert codes.min() == 0 and codes.max() == 19
    # as disentanglement_lib writes it
    column = np.random.default_rng(1).standard_normal(500)
    reference = np.digitize(column, np.histogram(column, 20)[1][:-1]) - 1
    np.testing.assert_array_equal(histogram_discretize(column[:, None])[:, 0], reference)


def test_discrete_mutual_information_matches_sklearn():
    from sklearn.metrics import mutual_info_score
    rng = np.random.default_rng(0)
    a = rng.integers(0, 7, 3000)
    b = (a + rng.integers(0, 3, 3000)) % 5
    assert discrete_mutual_information(a, b) == pytest.approx(mutual_info_score(a, b), rel=1e-12)
    assert discrete_entropy(np.array([0, 1] * 50)) == pytest.approx(math.log(2))
    assert discrete_mutual_information(np.arange(4), np.zeros(4, int)) == 0


def test_mig_is_large_when_one_dimension_copies_the_label():
    labels = labelled(10000, 0)
    result = mutual_information_gap(label_copy(labels, 4, 1), labels)
    assert result["mig"] > 0.9
    assert np.argmax(result["mutual_information"]) == 0
    assert result["label_entropy"] == pytest.approx(math.log(CLASSES), rel=0.01)


def test_mig_is_near_zero_for_pure_noise():
    labels = labelled(10000, 0)
    result = mutual_information_gap(np.random.default_rng(2).standard_normal((10000, 4)), labels)
    assert 0 <= result["mig"] < 0.01


def test_mig_is_near_zero_when_two_dimensions_share_the_label():
    labels = labelled(10000, 0)
    z = label_copy(labels, 3, 1)
    z[:, 1] = labels + 0.1 * np.random.default_rng(3).standard_normal(len(labels))
    assert mutual_information_gap(z, labels)["mig"] < 0.05


def test_mig_is_undefined_for_a_1d_latent_or_a_single_class():
    labels = labelled(500, 0)
    one_d = mutual_information_gap(label_copy(labels, 1, 1), labels)
    assert one_d["mig"] is None and "1-D latent" in one_d["note"]
    assert one_d["mutual_information"][0] > 2       # the information is there, the gap is not
    single = mutual_information_gap(np.random.default_rng(0).standard_normal((50, 3)), np.zeros(50, int))
    assert single["mig"] is None and "single class" in single["note"]


# -- total correlation ----------------------------------------------------------------------------
def test_total_correlation_is_zero_for_independent_dimensions():
    rng = np.random.default_rng(0)
    mu = rng.standard_normal((200000, 3)) * [1, 2, 0.5]
    logvar = np.log(rng.uniform(0.1, 1, (200000, 3)))
    assert total_correlation(mu, logvar) < 1e-4


def test_total_correlation_of_correlated_dimensions_is_the_closed_form():
    rho = 0.8
    covariance = np.array([[1, rho], [rho, 1]])
    assert gaussian_total_correlation(covariance) == pytest.approx(-0.5 * math.log(1 - rho ** 2))
    # the aggregate posterior adds each q(z|x)'s variance s^2 to the diagonal: correlation
    # rho / (1 + s^2), so TC = -1/2 log(1 - (rho / (1 + s^2))^2)
    rng = np.random.default_rng(0)
    mu = rng.multivariate_normal([0, 0], covariance, size=400000)
    s2 = 0.5
    logvar = np.full_like(mu, math.log(s2))
    expected = -0.5 * math.log(1 - (rho / (1 + s2)) ** 2)
    np.testing.assert_allclose(aggregate_posterior_covariance(mu, logvar),
                               covariance + s2 * np.eye(2), atol=0.01)
    assert total_correlation(mu, logvar) == pytest.approx(expected, rel=0.02)


def test_total_correlation_of_three_dimensions_and_of_a_singular_covariance():
    covariance = np.array([[2.0, 0.6, 0.0], [0.6, 1.0, 0.3], [0.0, 0.3, 0.5]])
    expected = 0.5 * (np.sum(np.log(np.diag(covariance))) - np.log(np.linalg.det(covariance)))
    assert gaussian_total_correlation(covariance) == pytest.approx(expected)
    assert gaussian_total_correlation(np.array([[1.0, 1.0], [1.0, 1.0]])) is None


# -- linear probe and k-NN ----------------------------------------------------------------------
def test_linear_probe_reads_a_separable_label_off_the_latent():
    train_labels, test_labels = labelled(6000, 0), labelled(2000, 1)
    result = linear_probe(blobs(train_labels, 4, 2), train_labels, blobs(test_labels, 4, 3), test_labels)
    assert result["accuracy"] > 0.99 and result["train_accuracy"] > 0.99
    assert result["classes"] == CLASSES and 0.08 < result["chance"] < 0.13


def test_linear_probe_is_at_chance_on_pure_noise():
    train_labels, test_labels = labelled(6000, 0), labelled(2000, 1)
    rng = np.random.default_rng(4)
    result = linear_probe(rng.standard_normal((6000, 4)), train_labels,
                          rng.standard_normal((2000, 4)), test_labels)
    assert abs(result["accuracy"] - 1 / CLASSES) < 0.04


def test_linear_probe_agrees_with_sklearns_logistic_regression():
    from sklearn.linear_model import LogisticRegression
    train_labels, test_labels = labelled(6000, 0), labelled(2000, 1)
    train, test = blobs(train_labels, 2, 5, spread=2.0), blobs(test_labels, 2, 6, spread=2.0)
    ours = linear_probe(train, train_labels, test, test_labels)["accuracy"]
    x_train, x_test = standardise(train, test)
    theirs = LogisticRegression(max_iter=2000).fit(x_train, train_labels).score(x_test, test_labels)
    assert 0.3 < theirs < 0.95                      # a problem where the fit matters
    assert abs(ours - theirs) < 0.01


def test_linear_probe_is_deterministic_for_a_seed():
    labels = labelled(1000, 0)
    z = blobs(labels, 3, 1, spread=2.0)
    assert linear_probe(z, labels, z, labels, seed=3) == linear_probe(z, labels, z, labels, seed=3)


def test_standardise_leaves_a_constant_feature_centred():
    train, test = standardise(np.array([[1.0, 5.0], [3.0, 5.0]]), np.array([[2.0, 6.0]]))
    np.testing.assert_allclose(train, [[-1, 0], [1, 0]])
    np.testing.assert_allclose(test, [[0, 1]])


def brute_force_knn(train, train_labels, test, k):
    distances = ((test[:, None, :] - train[None, :, :]) ** 2).sum(-1)
    nearest = np.argsort(distances, axis=1, kind="stable")[:, :k]
    votes = np.stack([np.bincount(row, minlength=CLASSES) for row in train_labels[nearest]])
    return np.argmax(votes, axis=1)            # a tie goes to the smallest label


def test_knn_accuracy_matches_a_brute_force_vote():
    rng = np.random.default_rng(0)
    train_labels, test_labels = labelled(400, 1), labelled(100, 2)
    train, test = blobs(train_labels, 3, 3, spread=2.5), blobs(test_labels, 3, 4, spread=2.5)
    expected = np.mean(brute_force_knn(train, train_labels, test, 5) == test_labels)
    assert knn_accuracy(train, train_labels, test, test_labels, k=5) == pytest.approx(expected)
    assert knn_accuracy(rng.standard_normal((3000, 2)), labelled(3000, 5),
                        rng.standard_normal((1000, 2)), labelled(1000, 6)) < 0.15


def test_knn_accuracy_near_one_for_a_label_copy_and_errors():
    train_labels, test_labels = labelled(5000, 0), labelled(1000, 1)
    assert knn_accuracy(label_copy(train_labels, 2, 2), train_labels,
                        label_copy(test_labels, 2, 3), test_labels) > 0.97
    with pytest.raises(ValueError, match="k must be"):
        knn_accuracy(np.zeros((3, 2)), np.zeros(3, int), np.zeros((1, 2)), np.zeros(1, int), k=4)


# -- all together ----------------------------------------------------------------------------
def test_latent_metrics_of_a_label_copy_and_of_noise():
    train_labels, test_labels = labelled(4000, 0), labelled(1000, 1)
    zeros = np.zeros((4000, 3)), np.zeros((1000, 3))
    good = latent_metrics((blobs(train_labels, 3, 2), zeros[0], train_labels),
                          (blobs(test_labels, 3, 3), zeros[1], test_labels))
    rng = np.random.default_rng(9)
    noise = latent_metrics((rng.standard_normal((4000, 3)), zeros[0], train_labels),
                           (rng.standard_normal((1000, 3)), zeros[1], test_labels), kind="cvae")
    assert good["linear_probe"]["accuracy"] > 0.98 and good["knn"]["accuracy"] > 0.98
    assert noise["linear_probe"]["accuracy"] < 0.16 and noise["knn"]["accuracy"] < 0.16
    assert good["test"]["active_units"] == 3 and good["latent_dim"] == 3
    assert noise["test"]["mig"] < 0.02 < good["test"]["mig"]
    assert any("CVAE" in note for note in noise["notes"])
    table = metrics_rows(good)
    assert table[0] == ("active units (Var_x mu_u > 0.01)", "3 of 3", "3 of 3")
    assert any(row[0].startswith("linear-probe") for row in table)


def test_latent_metrics_without_labels_skips_the_supervised_ones():
    rng = np.random.default_rng(0)
    result = latent_metrics((rng.standard_normal((100, 2)), np.zeros((100, 2)), None),
                            (rng.standard_normal((50, 2)), np.zeros((50, 2)), None))
    assert "linear_probe" not in result and "mig" not in result["test"]
    assert result["test"]["total_correlation"] is not None and "no labels" in result["notes"][0]
    assert len(metrics_rows(result)) == 2
