"""Softmax cross-entropy of integer labels, from logits: the loss of the linear probe
(multinomial logistic regression on the latent means, npvae.evaluation.probe).

For one row of logits a (C,) and its label y, with p = softmax(a):

    CE(a, y)      = -log p_y = logsumexp(a) - a_y
    d CE / d a_k  = p_k - [k == y]

logsumexp is taken after subtracting max(a), so no exponential overflows.

Convention: averaged over the batch, in nats; the gradient is (softmax(a) - onehot(y)) / N.
"""
import numpy as np


def log_softmax(logits):
    """log softmax over the last axis, (N, C) -> (N, C), overflow-free."""
    shifted = logits - np.max(logits, axis=1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))


def _check(logits, labels, caller):
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(f"{caller}: expected logits (N, C) and labels (N,), "
                         f"got {logits.shape} and {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{caller}: labels must be integers, got {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"{caller}: labels must be in 0..{logits.shape[1] - 1}, "
                         f"got {labels.min()}..{labels.max()}")
    return logits, labels


def softmax_cross_entropy(logits, labels):
    """-log softmax(logits)[label] per row, (N,) in float64."""
    logits, labels = _check(logits, labels, "softmax_cross_entropy")
    log_p = log_softmax(logits.astype(np.float64, copy=False))
    return -log_p[np.arange(len(labels)), labels]


class SoftmaxCrossEntropy:
    """Mean over the batch of -log softmax(logits)[label].

    forward(logits (N, C), labels (N,) ints) -> float;
    backward(grad=1.0) -> dlogits (N, C) = (softmax(logits) - onehot(labels)) / N, in the
    logits' dtype.
    """

    def __init__(self):
        self.per_row = None
        self._grad = None

    def forward(self, logits, labels):
        logits, labels = _check(logits, labels, "SoftmaxCrossEntropy")
        n = logits.shape[0]
        if n == 0:
            raise ValueError("SoftmaxCrossEntropy: empty batch")
        log_p = log_softmax(logits)
        rows = np.arange(n)
        self.per_row = -log_p[rows, labels].astype(np.float64)
        grad = np.exp(log_p)                      # softmax, in the logits' dtype
        grad[rows, labels] -= 1
        grad /= n
        self._grad = grad
        return float(self.per_row.mean())

    def backward(self, grad=1.0):
        if self._grad is None:
            raise RuntimeError("SoftmaxCrossEntropy: backward() called before forward()")
        return self._grad if grad == 1.0 else self._grad * self._grad.dtype.type(grad)
