"""Parameter, Module and Sequential: the little framework every layer is built on.

A module's ``forward(x)`` caches what its ``backward(grad_out)`` needs; ``backward``
adds the parameter gradients into ``Parameter.grad`` and returns the gradient with
respect to the input. There is no graph and no autograd: a model calls its layers'
``backward`` in the reverse order of their ``forward``.

Whoever runs a layer (a Sequential, a model) then calls ``layer.report_forward(...)`` and
``layer.report_backward(...)``, which tell the layer's observers, if any: that is how
``npvae inspect`` and the gradient checks watch each layer of the model's own forward and
backward (:func:`observe`). With no observer attached the reports cost nothing.
"""
from contextlib import contextmanager

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

    observers = ()          # objects told of this layer's forward and backward (see observe)

    def forward(self, x):
        raise NotImplementedError

    def backward(self, grad_out):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -- sub-modules and parameters ---------------------------------------------------
    def named_children(self):
        """The direct sub-modules, as (attribute name, module)."""
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def named_modules(self, prefix=""):
        """Every sub-module below this one, depth first: ``encoder``, ``encoder.0``, ... ``fc_mu``."""
        for name, child in self.named_children():
            yield prefix + name, child
            yield from child.named_modules(prefix + name + ".")

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
        """Convert every parameter (and its gradient) to ``dtype``; returns self."""
        for p in self.parameters():
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
        for name, p in params.items():
            value = np.asarray(state[name])
            if value.shape != p.data.shape:
                raise ValueError(f"{type(self).__name__}.load_state_dict: '{name}' has shape "
                                 f"{value.shape} in the state, {p.data.shape} in the model")
            p.data = np.ascontiguousarray(value, dtype=p.data.dtype).copy()
            p.grad = np.zeros_like(p.data)

    # -- reports to observers -----------------------------------------------------
    def report_forward(self, input_shape, output):
        """Called right after this layer's forward by whoever ran it. ``output`` may be
        overwritten later (by an in-place ReLU): observers use it before returning."""
        for observer in self.observers:
            observer.after_forward(self, input_shape, output)

    def report_backward(self, grad_input):
        """Called right after this layer's backward with what it returned (None for a first
        layer that skips its input gradient; a pair for Reparameterize)."""
        for observer in self.observers:
            observer.after_backward(self, grad_input)

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

    def forward(self, x, start=0):
        """Run the layers from ``start`` on (a model that ran the first one itself passes 1)."""
        for layer in self.layers[start:]:
            input_shape = x.shape
            x = layer.forward(x)
            layer.report_forward(input_shape, x)
        return x

    def backward(self, grad_out):
        for layer in reversed(self.layers):
            grad_out = layer.backward(grad_out)
            layer.report_backward(grad_out)
        return grad_out

    def __repr__(self):
        inner = "\n".join(f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"


class _Observer:
    """Passes a layer's reports on to two functions, with the layer's name in the model."""

    def __init__(self, names, forward, backward):
        self.names, self.forward, self.backward = names, forward, backward

    def after_forward(self, layer, input_shape, output):
        if self.forward is not None:
            self.forward(self.names[id(layer)], layer, input_shape, output)

    def after_backward(self, layer, grad_input):
        if self.backward is not None:
            self.backward(self.names[id(layer)], layer, grad_input)


@contextmanager
def observe(model, forward=None, backward=None):
    """Watch every layer of ``model`` through its own forward and backward, inside a ``with``.

    ``forward(name, layer, input_shape, output)`` is called after each layer's forward and
    ``backward(name, layer, grad_input)`` after its backward, in the order they run, with
    the names of ``model.named_modules()`` (``encoder.0``, ``fc_mu``, ``reparameterize``,
    ``decoder.7``). Only layers (modules without sub-modules) report, when whoever runs
    them (a Sequential, a model) reports for them: to watch a lone layer, wrap it in a
    Sequential. The arrays passed are the live ones: copy what you keep.
    """
    names = {id(layer): name for name, layer in model.named_modules()
             if next(layer.named_children(), None) is None}
    layers = [layer for _, layer in model.named_modules() if id(layer) in names]
    observer = _Observer(names, forward, backward)
    for layer in layers:
        layer.observers = (*layer.observers, observer)
    try:
        yield
    finally:
        for layer in layers:
            layer.observers = tuple(o for o in layer.observers if o is not observer)
