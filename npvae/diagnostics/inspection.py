"""Looking inside a VAE or CVAE: the logic behind ``npvae inspect``.

Everything here works from the outside of a model, through its public parts:
``model.encoder`` and ``model.decoder`` (Sequentials), ``model.fc_mu``,
``model.fc_logvar`` and ``model.reparameterize``. :func:`forward_steps` and
:func:`backward_steps` replay ``VAE.forward`` and ``VAE.backward`` one layer at a time
and call a visitor after each layer, which is how the per-layer statistics are taken
without changing any layer. They are the same computation, array for array, as the
model's own methods (``tests/test_inspect.py`` checks that, and so does the whole-model
gradient check, which uses them to see ReLU kinks).

:func:`inspect_model` returns one JSON-able dict; :func:`format_report` prints it.
"""
import math
from dataclasses import dataclass, field

import numpy as np

from ..losses import BernoulliLoss, GaussianKL
from ..nn import Conv2d, ConvTranspose2d, Flatten, Linear, ReLU, Sigmoid, Unflatten, clamp_logvar, sigmoid

ACTIVE_THRESHOLD = 0.01      # Burda et al. (2016): active when Var_x(E_q[z_j]) > 0.01


# -- one layer at a time -------------------------------------------------------------
def forward_steps(model, x, eps, labels=None, visit=None):
    """``model.forward(x, eps, labels)`` one layer at a time -> (logits, mu, logvar).

    ``visit(name, layer, input_shape, output)`` is called after every step, with names
    as in ``model.named_parameters()``: ``encoder.0`` ... ``fc_mu``, ``fc_logvar``,
    ``reparameterize``, ``decoder.0`` ...; a CVAE adds ``condition`` (label planes joined
    to the image) and ``decoder.input`` (one-hot joined to z), with ``layer`` None.
    ``output`` may be overwritten by a later in-place ReLU: use it before returning.
    """
    visit = visit or (lambda *args: None)
    if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[1:] != (1, 28, 28):
        raise ValueError(f"expected images of shape (N, 1, 28, 28), got {getattr(x, 'shape', x)}")
    h = model.encoder_input(x, labels)   # a CVAE appends its label planes
    if h is not x:
        visit("condition", None, x.shape, h)
    for i, layer in enumerate(model.encoder):
        shape = h.shape
        h = layer.forward(h)
        visit(f"encoder.{i}", layer, shape, h)
    mu = model.fc_mu.forward(h)
    visit("fc_mu", model.fc_mu, h.shape, mu)
    logvar = model.fc_logvar.forward(h)
    visit("fc_logvar", model.fc_logvar, h.shape, logvar)
    z = model.reparameterize.forward(mu, logvar, eps)
    visit("reparameterize", model.reparameterize, mu.shape, z)
    h = model.decoder_input(z.astype(model.dtype, copy=False), labels)
    if h.shape != z.shape:
        visit("decoder.input", None, z.shape, h)
    for i, layer in enumerate(model.decoder):
        shape = h.shape
        h = layer.forward(h)
        visit(f"decoder.{i}", layer, shape, h)
    return h, mu, logvar


def backward_steps(model, grad_logits, grad_mu, grad_logvar, visit=None):
    """``model.backward(grad_logits, grad_mu, grad_logvar)`` one layer at a time.

    ``visit(name, layer, grad_input)`` after each step, with the gradient of the loss
    with respect to that step's input (None for a first layer that skips it; a pair
    (d/dmu, d/dlogvar) for ``reparameterize``). Parameter gradients accumulate in
    ``Parameter.grad`` exactly as ``model.backward`` leaves them.
    """
    visit = visit or (lambda *args: None)
    g = grad_logits
    for i in reversed(range(len(model.decoder))):
        g = model.decoder[i].backward(g)
        visit(f"decoder.{i}", model.decoder[i], g)
    if g.shape[1] != model.latent_dim:
        visit("decoder.input", None, g[:, :model.latent_dim])
    grad_z = g[:, :model.latent_dim]
    grad_mu_z, grad_logvar_z = model.reparameterize.backward(grad_z)
    visit("reparameterize", model.reparameterize, (grad_mu_z, grad_logvar_z))
    grad_features = model.fc_mu.backward(grad_mu_z + grad_mu)
    visit("fc_mu", model.fc_mu, grad_features)
    grad_features_logvar = model.fc_logvar.backward(grad_logvar_z + grad_logvar)
    visit("fc_logvar", model.fc_logvar, grad_features_logvar)
    g = grad_features + grad_features_logvar
    for i in reversed(range(len(model.encoder))):
        g = model.encoder[i].backward(g)
        visit(f"encoder.{i}", model.encoder[i], g)
        if g is None:
            break


# -- the architecture ------------------------------------------------------------------
def forward_flops(layer, input_shape, output_shape):
    """FLOPs of one image's forward pass through ``layer``.

    Convention: 2 per multiply-add of a GEMM (the convolutions' im2col/col2im copies
    and scatters are not counted), 1 per bias add and per element of an elementwise
    layer (ReLU, sigmoid), 4 per latent dimension for z = mu + exp(logvar/2) * eps,
    0 for reshapes and concatenations.
    """
    per_image_out = math.prod(output_shape[1:])
    if isinstance(layer, Linear):
        return 2 * layer.in_features * layer.out_features + (layer.out_features if layer.bias else 0)
    if isinstance(layer, Conv2d):
        kh, kw = layer.kernel_size
        macs = per_image_out * layer.in_channels * kh * kw
        return 2 * macs + (per_image_out if layer.bias else 0)
    if isinstance(layer, ConvTranspose2d):
        kh, kw = layer.kernel_size
        macs = math.prod(input_shape[2:]) * layer.in_channels * layer.out_channels * kh * kw
        return 2 * macs + (per_image_out if layer.bias else 0)
    if isinstance(layer, (ReLU, Sigmoid)):
        return per_image_out
    if type(layer).__name__ == "Reparameterize":
        return 4 * per_image_out
    return 0


def _hw(pair):
    return f"{pair[0]}" if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"


def layer_type(name, layer):
    """A short description: ``Conv2d 1->32 k4 s2 p1``, ``Linear 2048->2``, ``ReLU``..."""
    if layer is None:
        return "concat label planes" if name == "condition" else "concat one-hot label"
    kind = type(layer).__name__
    if isinstance(layer, (Conv2d, ConvTranspose2d)):
        text = (f"{kind} {layer.in_channels}->{layer.out_channels} k{_hw(layer.kernel_size)} "
                f"s{_hw(layer.stride)} p{_hw(layer.padding)}")
        if isinstance(layer, ConvTranspose2d) and any(layer.output_padding):
            text += f" op{_hw(layer.output_padding)}"
        return text
    if isinstance(layer, Linear):
        return f"Linear {layer.in_features}->{layer.out_features}"
    if isinstance(layer, ReLU):
        return "ReLU (in place)" if layer.inplace else "ReLU"
    if isinstance(layer, Unflatten):
        return f"Unflatten -> {'x'.join(map(str, layer.shape))}"
    if isinstance(layer, Flatten):
        return "Flatten"
    if kind == "Reparameterize":
        return "Reparameterize mu + sigma*eps"
    return kind


@dataclass
class LayerRecord:
    name: str
    type: str
    repr: str
    input_shape: tuple
    output_shape: tuple
    params: int
    mflop: float
    activation: dict = field(default_factory=dict)
    grad_input_norm: float | None = None
    grad_param_norms: dict = field(default_factory=dict)

    def to_json(self):
        return {"name": self.name, "type": self.type, "repr": self.repr, "input_shape": list(self.input_shape),
                "output_shape": list(self.output_shape), "params": self.params,
                "mflop": self.mflop, "activation": self.activation,
                "grad_input_norm": self.grad_input_norm, "grad_param_norms": self.grad_param_norms}


def _params(layer):
    return 0 if layer is None else sum(p.data.size for _, p in layer.named_parameters())


def _activation_stats(y):
    y = np.asarray(y, dtype=np.float64)
    return {"mean": float(y.mean()), "std": float(y.std()), "zero_fraction": float(np.mean(y == 0))}


def _norm(g):
    return float(np.sqrt(np.sum(np.square(g, dtype=np.float64))))


def describe(model):
    """The layer table: one LayerRecord per step, shapes per image, from a 1-image pass.

    The model's parameters and gradients are left as they were (only layer caches change).
    """
    x = np.zeros((1, 1, 28, 28), dtype=model.dtype)
    eps = np.zeros((1, model.latent_dim), dtype=model.dtype)
    labels = np.zeros(1, dtype=np.int64) if model.kind == "cvae" else None
    records = []

    def visit(name, layer, input_shape, output):
        records.append(LayerRecord(name, layer_type(name, layer), repr(layer) if layer else "",
                                   tuple(input_shape[1:]),
                                   tuple(output.shape[1:]), _params(layer),
                                   forward_flops(layer, input_shape, output.shape) / 1e6))

    logits, _, _ = forward_steps(model, x, eps, labels, visit)
    records.append(LayerRecord("sigmoid", "Sigmoid (fused into the loss)", "Sigmoid()",
                               tuple(logits.shape[1:]),
                               tuple(logits.shape[1:]), 0, math.prod(logits.shape[1:]) / 1e6))
    return records


# -- data --------------------------------------------------------------------------------
def synthetic_digits(n, rng):
    """uint8 (n, 28, 28) stand-ins for MNIST: a few bright strokes on black, labels 0..9."""
    images = np.zeros((n, 28, 28))
    yy, xx = np.mgrid[0:28, 0:28]
    for img in images:
        for _ in range(rng.integers(2, 5)):
            (y0, x0), (y1, x1) = rng.uniform(5, 23, (2, 2))
            t = np.linspace(0, 1, 24)[:, None, None]
            dist = np.min((yy - (y0 + t * (y1 - y0))) ** 2 + (xx - (x0 + t * (x1 - x0))) ** 2, axis=0)
            img += np.exp(-dist / 2.0)
    images = np.clip(images, 0, 1) * 255
    return images.astype(np.uint8), rng.integers(0, 10, n).astype(np.int64)


def load_batch(dataset, batch_size, rng, data_root=None, download=False, active_images=0):
    """(batch uint8, batch labels, AU images, AU labels, description).

    The batch is drawn at random from the test split when the files are on disk (or can
    be downloaded with ``download=True``); otherwise synthetic strokes, and the
    description says so. The active-unit images are the first ``active_images`` test
    images (none when synthetic).
    """
    from ..data import load_dataset            # noqa: PLC0415 (only needed here)
    try:
        images, labels = load_dataset(dataset, "test", root=data_root, download=download)
    except (OSError, ValueError):
        images, labels = synthetic_digits(batch_size, rng)
        return images, labels, images[:0], labels[:0], (
            f"synthetic strokes: no {dataset} files found (set NPVAE_DATA, pass --data DIR, "
            f"or --download)")
    index = np.sort(rng.choice(len(images), size=min(batch_size, len(images)), replace=False))
    labels = labels.astype(np.int64)
    au = min(active_images, len(images))
    return images[index], labels[index], images[:au], labels[:au], f"{dataset} test set"


def active_units(mu, threshold=ACTIVE_THRESHOLD):
    """Burda et al. (2016): dimension j is active when Var over x of E_q[z_j | x] > threshold.

    ``mu`` (N, d) holds E_q[z | x] = mu(x) for N images. Returns (variances, active mask).
    """
    variances = np.var(np.asarray(mu, dtype=np.float64), axis=0)
    return variances, variances > threshold


def encode_means(model, images, labels, batch_size=500):
    """mu(x) for uint8 images, in chunks (no gradients)."""
    from ..data import to_float                # noqa: PLC0415
    out = []
    for start in range(0, len(images), batch_size):
        stop = min(start + batch_size, len(images))
        mu, _ = model.encode(to_float(images[start:stop], model.dtype),
                             None if model.kind == "vae" else labels[start:stop])
        out.append(np.asarray(mu, dtype=np.float64))
    return np.concatenate(out) if out else np.zeros((0, model.latent_dim))


# -- one batch ------------------------------------------------------------------------------
def inspect_model(model, images, labels, eps, beta=1.0, au_images=None, au_labels=None,
                  source="", data="", threshold=ACTIVE_THRESHOLD):
    """Architecture plus one forward/backward pass on ``images`` (uint8, (N, 28, 28)).

    Returns a JSON-able dict: ``model``, ``layers`` (per layer: shapes, parameters,
    MFLOP per image, activation mean/std/fraction of zeros, gradient norms of the input
    and of each parameter), ``totals``, ``batch``, ``loss`` (recon, KL, beta, total),
    ``kl_per_dim`` and ``active_units``. The model's parameter gradients are left as
    the batch's training step would leave them (beta-weighted KL included).
    """
    from ..data import to_float                # noqa: PLC0415
    records = describe(model)
    by_name = {r.name: r for r in records}
    x = to_float(images, model.dtype)
    labels = None if model.kind == "vae" else np.asarray(labels, dtype=np.int64)
    eps = np.asarray(eps, dtype=model.dtype)

    def visit_forward(name, layer, input_shape, output):
        by_name[name].activation = _activation_stats(output)

    model.zero_grad()
    logits, mu, logvar = forward_steps(model, x, eps, labels, visit_forward)
    probs = sigmoid(logits)
    by_name["sigmoid"].activation = _activation_stats(probs)
    recon_loss, kl_loss = BernoulliLoss(), GaussianKL()
    recon = recon_loss.forward(logits, x)
    kl = kl_loss.forward(mu, logvar)
    grad_logits = recon_loss.backward()
    by_name["sigmoid"].grad_input_norm = _norm(grad_logits)
    grad_mu, grad_logvar = kl_loss.backward(beta)

    def visit_backward(name, layer, grad_input):
        record = by_name[name]
        if grad_input is None:
            record.grad_input_norm = None
        elif isinstance(grad_input, tuple):
            record.grad_input_norm = _norm(np.concatenate([np.ravel(g) for g in grad_input]))
        else:
            record.grad_input_norm = _norm(grad_input)
        if layer is not None:
            record.grad_param_norms = {pname: _norm(p.grad) for pname, p in layer.named_parameters()}

    backward_steps(model, grad_logits, grad_mu, grad_logvar, visit_backward)

    clamped, _ = clamp_logvar(logvar)        # eq. 17 term by term, as npvae.losses.gaussian_kl
    kl_dims = 0.5 * (mu * mu + np.exp(clamped) - clamped - 1)
    if au_images is not None and len(au_images) > len(images):
        au_mu = encode_means(model, au_images, au_labels)
        au_over = f"the first {len(au_images)} images of the {data}"
    else:
        au_mu = np.asarray(mu, dtype=np.float64)
        au_over = f"the batch ({len(images)} image{'' if len(images) == 1 else 's'})"
    variances, active = active_units(au_mu, threshold)

    return {
        "model": {"kind": model.kind, "latent_dim": model.latent_dim, "source": source,
                  "config": model.config(), "dtype": str(model.dtype)},
        "layers": [r.to_json() for r in records],
        "totals": {"params": int(model.num_parameters()),
                   "mflop_per_image": float(sum(r.mflop for r in records))},
        "batch": {"size": int(len(images)), "data": data,
                  "labels": None if labels is None else [int(v) for v in labels]},
        "loss": {"recon": float(recon), "kl": float(kl), "beta": float(beta),
                 "total": float(recon + beta * kl), "ratio": float(recon / kl) if kl > 0 else None},
        "kl_per_dim": [float(v) for v in kl_dims.mean(axis=0, dtype=np.float64)],
        "active_units": {"threshold": threshold, "over": au_over, "n_images": int(len(au_mu)),
                         "variances": [float(v) for v in variances],
                         "active": [bool(a) for a in active], "count": int(active.sum()),
                         "latent_dim": int(model.latent_dim)},
    }


# -- printing ---------------------------------------------------------------------------------
def _shape(shape):
    return "x".join(str(s) for s in shape)


def _num(value, fmt="{:.3g}"):
    return "-" if value is None else fmt.format(value)


def format_report(report):
    m, t = report["model"], report["totals"]
    lines = [f"{m['kind'].upper()}, latent dim {m['latent_dim']}, {m['dtype']}: {m['source']}", "",
             "Architecture (shapes per image; MFLOP of one image's forward pass, "
             "2 per multiply-add):",
             f"  {'layer':<15} {'type':<30} {'input':>12} {'output':>12} {'params':>9} {'MFLOP':>8}"]
    for layer in report["layers"]:
        lines.append(f"  {layer['name']:<15} {layer['type']:<30} {_shape(layer['input_shape']):>12} "
                     f"{_shape(layer['output_shape']):>12} {layer['params']:>9,} {layer['mflop']:>8.3f}")
    lines.append(f"  {'total':<15} {'':<30} {'':>12} {'':>12} {t['params']:>9,} "
                 f"{t['mflop_per_image']:>8.3f}")
    b, loss = report["batch"], report["loss"]
    lines += ["", f"One batch: {b['size']} images, {b['data']}", "",
              "Activations (of each layer's output) and gradient norms (L2, of the batch loss):",
              f"  {'layer':<15} {'mean':>10} {'std':>10} {'zeros':>7} {'|dL/d input|':>13} "
              f"{'|dL/d weight|':>14} {'|dL/d bias|':>12}"]
    for layer in report["layers"]:
        a, g = layer["activation"], layer["grad_param_norms"]
        lines.append(f"  {layer['name']:<15} {_num(a.get('mean'), '{:>10.4f}'):>10} "
                     f"{_num(a.get('std'), '{:>10.4f}'):>10} {_num(a.get('zero_fraction'), '{:>7.1%}'):>7} "
                     f"{_num(layer['grad_input_norm'], '{:.3e}'):>13} {_num(g.get('weight'), '{:.3e}'):>14} "
                     f"{_num(g.get('bias'), '{:.3e}'):>12}")
    lines.append("  (zeros after a ReLU = inactive units on this batch; |dL/d input| of "
                 "reparameterize is that of (mu, logvar))")
    ratio = "-" if loss["ratio"] is None else f"{loss['ratio']:.1f}"
    lines += ["", f"Loss (eq. 30, nats per image): recon {loss['recon']:.3f} + beta {loss['beta']:g} "
                  f"x KL {loss['kl']:.3f} = {loss['total']:.3f}   (recon/KL {ratio})",
              "KL per latent dimension: " + ", ".join(f"z{j}: {v:.3f}" for j, v in enumerate(report["kl_per_dim"]))]
    au = report["active_units"]
    lines.append(f"Active units (Var_x E_q[z_j] > {au['threshold']:g}, over {au['over']}): "
                 f"{au['count']} of {au['latent_dim']}   ["
                 + ", ".join(f"z{j}: {v:.3g}{'' if a else ' (inactive)'}"
                             for j, (v, a) in enumerate(zip(au["variances"], au["active"]))) + "]")
    return "\n".join(lines)
