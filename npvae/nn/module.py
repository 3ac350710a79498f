"""Parameter, Module and Sequential: the little framework every layer is built on.

A module's ``forward(x)`` caches what its ``backward(grad_out)`` needs; ``backward``
adds the parameter gradients into ``Parameter.grad`` and returns the gradient with
respect to the input. There is no graph and no autograd: a model calls its layers'
``backward`` in the reverse order of their ``forward``.
"""
import numpy as np


class Parameter:
    """A trainable array and the gradient accumulated for it (same shape, same dtype)."""

    def __init__(self, data):
        self.data = np.ascontiguousarray(data)
        self.grad = np.zeros_like(self.data)

    @property
    def shape(self):
        return self.data.shape

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class: parameter bookkeeping, dtype conversion and state dicts.

    Parameters and sub-modules are found among the instance attributes, in the order
    they were assigned, so names read like PyTorch's (``encoder.0.weight``).
    """

    def forward(self, x):
        raise NotImplementedError

    def backward(self, grad_out):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -- parameters -------------------------------------------------------------
    def named_children(self):
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def named_parameters(self, prefix=""):
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value
            elif isinstance(value, Module):
                yield from value.named_parameters(prefix + name + ".")

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def zero_grad(self):
        for p in self.parameters():
            p.grad.fill(0)

    def num_parameters(self):
        return sum(p.data.size for p in self.parameters())

    @property
    def dtype(self):
        params = self.parameters()
        return params[0].data.dtype if params else None

    def to(self, dtype):
        """Convert every parameter (and its gradient) to ``dtype``; returns self.

        A new dtype needs new arrays, so ``Parameter.data`` is replaced (anything holding the
        old arrays, e.g. a DataParallel's replicas, must notice: see npvae/parallel.py); when
        the dtype is already ``dtype`` the arrays are kept as they are."""
        for p in self.parameters():
            if p.data.dtype != np.dtype(dtype):
                p.data = p.data.astype(dtype)
                p.grad = np.zeros_like(p.data)
        return self

    # -- state ------------------------------------------------------------------
    def state_dict(self):
        """Copies of every parameter array, keyed by dotted name."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state):
        """Load arrays saved by :meth:`state_dict`; names and shapes must match exactly."""
        params = dict(self.named_parameters())
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        if missing or unexpected:
            raise ValueError(f"{type(self).__name__}.load_state_dict: missing keys {missing}, "
                             f"unexpected keys {unexpected}")
        for name, p in params.items():      # check every shape before changing anything
            value = np.shape(state[name])
            if value != p.data.shape:
                raise ValueError(f"{type(self).__name__}.load_state_dict: '{name}' has shape "
                                 f"{value} in the state, {p.data.shape} in the model")
        # Copied into the existing arrays, which keep their dtype: whatever shares them (a
        # DataParallel's replicas, an optimizer) sees the loaded values, never stale ones.
        for name, p in params.items():
            np.copyto(p.data, np.asarray(state[name]), casting="unsafe")
            p.grad.fill(0)

    # -- helpers for layers -----------------------------------------------------
    def _check_input(self, x, ndim, what):
        """Clear errors for the mistakes a user makes most: rank and dtype."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{self!r}: expected a numpy array, got {type(x).__name__}")
        if x.ndim != ndim:
            raise ValueError(f"{self!r}: expected {ndim}-D input {what}, "
                             f"got shape {x.shape}")
        dtype = self.dtype
        if dtype is not None and x.dtype != dtype:
            raise TypeError(f"{self!r}: input dtype {x.dtype} does not match the parameters' "
                            f"{dtype}; convert one of them (model.to(np.{x.dtype}) or "
                            f"x.astype(np.{dtype}))")

    def _cached(self, name):
        value = getattr(self, name, None)
        if value is None:
            raise RuntimeError(f"{self!r}: backward() called before forward()")
        return value

    def extra_repr(self):
        return ""

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"


class Sequential(Module):
    """Layers applied in order; backward runs them in reverse."""

    def __init__(self, *layers):
        self.layers = list(layers)

    def named_children(self):
        for i, layer in enumerate(self.layers):
            yield str(i), layer

    def named_parameters(self, prefix=""):
        for i, layer in enumerate(self.layers):
            yield from layer.named_parameters(f"{prefix}{i}.")

    def __getitem__(self, index):
        return self.layers[index]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_out):
        for layer in reversed(self.layers):
            grad_out = layer.backward(grad_out)
        return grad_out

    def __repr__(self):
        inner = "\n".join(f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"
