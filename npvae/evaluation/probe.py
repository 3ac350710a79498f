"""A linear probe: multinomial logistic regression from latent means to labels, built from
npvae's own pieces (``Linear``, the hand-written ``SoftmaxCrossEntropy``, ``Adam``).

Its test accuracy says how much of the label a linear read-out finds in the latent space:
near 1 for a VAE whose classes form separable clusters, near chance for a CVAE whose
latent holds only style.
"""
import numpy as np

from ..data import minibatches
from ..losses import SoftmaxCrossEntropy
from ..nn import Linear
from ..optim import Adam
from ..runtime import blas_threads

PROBE_EPOCHS = 20
PROBE_BATCH = 500
PROBE_LR = 0.03


def standardise(train, *others):
    """Scale every feature to mean 0, variance 1 on ``train``; the same map for ``others``.
    A constant feature (a collapsed latent dimension) is only centred."""
    train = np.asarray(train, dtype=np.float64)
    mean, scale = train.mean(axis=0), train.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    return [(np.asarray(x, dtype=np.float64) - mean) / scale for x in (train, *others)]


def linear_probe(train_features, train_labels, test_features, test_labels, num_classes=None,
                 epochs=PROBE_EPOCHS, batch_size=PROBE_BATCH, lr=PROBE_LR, seed=0):
    """Train ``Linear(d, C)`` with softmax cross-entropy on the standardised training features:
    ``epochs`` passes of Adam over mini-batches of ``batch_size``, initialisation and shuffling
    drawn from ``seed`` (a convex problem: the result barely depends on them), in float64.
    C = ``num_classes``, or max label + 1.

    Returns a dict: ``accuracy`` (test), ``train_accuracy``, ``train_loss`` (nats, mean),
    ``chance`` (frequency of the most common test label), ``classes`` and the settings.
    """
    train_labels = np.asarray(train_labels).astype(np.int64)
    test_labels = np.asarray(test_labels).astype(np.int64)
    if len(train_labels) == 0 or len(test_labels) == 0:
        raise ValueError("linear_probe: needs at least one training and one test example")
    if len(train_features) != len(train_labels) or len(test_features) != len(test_labels):
        raise ValueError("linear_probe: features and labels differ in length")
    classes = int(num_classes or max(train_labels.max(), test_labels.max()) + 1)
    x_train, x_test = standardise(train_features, test_features)
    init_rng, shuffle_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    layer = Linear(x_train.shape[1], classes, rng=init_rng, dtype=np.float64)
    optimizer = Adam(layer.parameters(), lr=lr)
    loss = SoftmaxCrossEntropy()
    # Products of a (B, d) matrix with a (d, C) one: BLAS threads cost more than they save
    # (measured 7-20x slower with two threads on a busy 2-core machine).
    with blas_threads(1):
        for _ in range(epochs):
            for index in minibatches(len(x_train), batch_size, shuffle_rng):
                optimizer.zero_grad()
                loss.forward(layer.forward(x_train[index]), train_labels[index])
                layer.backward(loss.backward())
                optimizer.step()
        train_logits = layer.forward(x_train)
        test_logits = layer.forward(x_test)
    train_loss = loss.forward(train_logits, train_labels)
    return {"accuracy": float(np.mean(np.argmax(test_logits, axis=1) == test_labels)),
            "train_accuracy": float(np.mean(np.argmax(train_logits, axis=1) == train_labels)),
            "train_loss": train_loss,
            "chance": float(np.bincount(test_labels).max() / len(test_labels)),
            "classes": classes, "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed}
