"""Looking inside a VAE or CVAE, one batch at a time: the logic behind ``npvae inspect``.

The batch goes through the model's own training step, ``model.forward``, the model's own
loss (``NegativeELBO(model.reconstruction_loss())``, eq. 30) and ``model.backward``, while
npvae.nn.observe reports every layer's output and input gradient; the statistics are taken
from those reports. Nothing here replays the model.

:func:`inspect_model` returns one JSON-able dict; :func:`format_report` prints it;
:func:`inspect_run` is the whole command (model, batch, report, optional JSON file).
"""
import os

import numpy as np

from .. import data as npvae_data      # load_dataset looked up when called (tests replace it)
from ..data import to_float
from ..evaluation import posterior_means
from ..evaluation.metrics import ACTIVE_THRESHOLD, active_units
from ..files import atomic_write_text
from ..losses import NegativeELBO
from ..models import build_model, model_config
from ..nn import clamp_logvar, observe, sigmoid
from ..runs import RunDirectory, json_text, open_model
from .flops import describe



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
    try:
        images, labels = npvae_data.load_dataset(dataset, "test", root=data_root, download=download)
    except (OSError, ValueError):
        images, labels = synthetic_digits(batch_size, rng)
        return images, labels, images[:0], labels[:0], (
            f"synthetic strokes: no {dataset} files found (set NPVAE_DATA, pass --data DIR, "
            f"or --download)")
    index = np.sort(rng.choice(len(images), size=min(batch_size, len(images)), replace=False))
    labels = labels.astype(np.int64)
    au = min(active_images, len(images))
    return images[index], labels[index], images[:au], labels[:au], f"{dataset} test set"


# -- one batch ------------------------------------------------------------------------------
def activation_stats(y):
    """Mean, std and fraction of zeros of a layer's output over the batch, and the fraction of
    its units (entries per image) that are zero on every image: dead on this batch."""
    y = np.asarray(y, dtype=np.float64)
    zero = y == 0
    return {"mean": float(y.mean()), "std": float(y.std()), "zero_fraction": float(zero.mean()),
            "dead_fraction": float(zero.all(axis=0).mean()) if y.ndim > 1 else float(zero.all())}


def norm(g):
    return float(np.sqrt(np.sum(np.square(g, dtype=np.float64))))


def _likelihood(model):
    """The decoder's p(x|z) as the report names it, and its own parameters (pixel_logvar)."""
    if model.likelihood == "bernoulli":
        return {"kind": "bernoulli", "recon": "BCE"}
    text = {"kind": "gaussian", "recon": "Gaussian NLL", "variance": model.variance}
    if model.variance == "fixed":
        text["pixel_variance"] = model.pixel_variance
    else:
        variances = np.exp(model.pixel_log_variance())
        text["pixel_variance_range"] = [float(variances.min()), float(variances.max())]
    return text


def inspect_model(model, images, labels, eps, beta=1.0, au_images=None, au_labels=None,
                  source="", data="", threshold=ACTIVE_THRESHOLD):
    """Architecture plus one training step's forward/backward on ``images`` (uint8, (N, 28, 28)).

    Returns a JSON-able dict: ``model``, ``likelihood``, ``layers`` (per layer: shapes,
    parameters, MFLOP per image, activation mean/std/fraction of zeros/dead fraction,
    gradient norms of the input and of each parameter), ``parameters`` (the gradient norm of
    every parameter by name, ``pixel_logvar`` included), ``totals``, ``batch``, ``loss``
    (recon, KL, beta, total), ``kl_per_dim`` and ``active_units``. The model's parameter
    gradients are left as the batch's training step would leave them.
    """
    records = describe(model)
    by_name = {r.name: r for r in records}
    x = to_float(images, model.dtype)
    labels = None if model.kind == "vae" else np.asarray(labels, dtype=np.int64)
    eps = np.asarray(eps, dtype=model.dtype)

    def after_forward(name, layer, input_shape, output):
        by_name[name].activation = activation_stats(output)

    def after_backward(name, layer, grad_input):
        record = by_name[name]
        if grad_input is None:
            record.grad_input_norm = None
        elif isinstance(grad_input, tuple):            # Reparameterize: (d/dmu, d/dlogvar)
            record.grad_input_norm = norm(np.concatenate([np.ravel(g) for g in grad_input]))
        else:
            record.grad_input_norm = norm(grad_input)
        record.grad_param_norms = {pname: norm(p.grad) for pname, p in layer.named_parameters()}

    objective = NegativeELBO(model.reconstruction_loss())
    model.zero_grad()
    with observe(model, forward=after_forward, backward=after_backward):
        logits, mu, logvar = model.forward(x, eps, labels)
        by_name["sigmoid"].activation = activation_stats(sigmoid(logits))
        total, recon, kl = objective.forward(logits, x, mu, logvar, beta)
        grad_logits, grad_mu, grad_logvar = objective.backward()
        by_name["sigmoid"].grad_input_norm = norm(grad_logits)
        model.backward(grad_logits, grad_mu, grad_logvar)

    clamped, _ = clamp_logvar(logvar)        # eq. 17 term by term, as npvae.losses.gaussian_kl
    kl_dims = 0.5 * (mu * mu + np.exp(clamped) - clamped - 1)
    if au_images is not None and len(au_images) > len(images):
        au_mu = posterior_means(model, au_images, au_labels)
        au_over = f"the first {len(au_images)} images of the {data}"
    else:
        au_mu = mu
        au_over = f"the batch ({len(images)} image{'' if len(images) == 1 else 's'})"
    variances, active = active_units(au_mu, threshold)

    return {
        "model": {"kind": model.kind, "latent_dim": model.latent_dim, "source": source,
                  "config": model.config(), "dtype": str(model.dtype)},
        "likelihood": _likelihood(model),
        "layers": [r.to_json() for r in records],
        "parameters": {name: norm(p.grad) for name, p in model.named_parameters()},
        "totals": {"params": int(model.num_parameters()),
                   "mflop_per_image": float(sum(r.mflop for r in records))},
        "batch": {"size": int(len(images)), "data": data,
                  "labels": None if labels is None else [int(v) for v in labels]},
        "loss": {"recon": float(recon), "kl": float(kl), "beta": float(beta), "total": float(total),
                 "ratio": float(recon / kl) if kl > 0 else None},
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
             f"  {'layer':<15} {'type':<34} {'input':>12} {'output':>12} {'params':>9} {'MFLOP':>8}"]
    for layer in report["layers"]:
        lines.append(f"  {layer['name']:<15} {layer['type']:<34} {_shape(layer['input_shape']):>12} "
                     f"{_shape(layer['output_shape']):>12} {layer['params']:>9,} {layer['mflop']:>8.3f}")
    lines.append(f"  {'total':<15} {'':<34} {'':>12} {'':>12} {t['params']:>9,} "
                 f"{t['mflop_per_image']:>8.3f}")
    b, loss, lik = report["batch"], report["loss"], report["likelihood"]
    lines += ["", f"One batch: {b['size']} images, {b['data']}", "",
              "Activations (of each layer's output) and gradient norms (L2, of the batch loss):",
              f"  {'layer':<15} {'mean':>10} {'std':>10} {'zeros':>7} {'dead':>7} {'|dL/d input|':>13} "
              f"{'|dL/d weight|':>14} {'|dL/d bias|':>12}"]
    for layer in report["layers"]:
        a, g = layer["activation"], layer["grad_param_norms"]
        lines.append(f"  {layer['name']:<15} {_num(a.get('mean'), '{:>10.4f}'):>10} "
                     f"{_num(a.get('std'), '{:>10.4f}'):>10} {_num(a.get('zero_fraction'), '{:>7.1%}'):>7} "
                     f"{_num(a.get('dead_fraction'), '{:>7.1%}'):>7} "
                     f"{_num(layer['grad_input_norm'], '{:.3e}'):>13} {_num(g.get('weight'), '{:.3e}'):>14} "
                     f"{_num(g.get('bias'), '{:.3e}'):>12}")
    lines.append("  (zeros after a ReLU = inactive outputs on this batch, dead = units zero on every "
                 "image; |dL/d input| of reparameterize is that of (mu, logvar))")
    if lik["kind"] == "gaussian":
        if lik["variance"] == "learned":
            low, high = lik["pixel_variance_range"]
            lines.append(f"Gaussian decoder, learned per-pixel variance in [{low:.3g}, {high:.3g}]: "
                         f"|dL/d pixel_logvar| {report['parameters']['pixel_logvar']:.3e}")
        else:
            lines.append(f"Gaussian decoder, fixed variance {lik['pixel_variance']:g}")
    ratio = "-" if loss["ratio"] is None else f"{loss['ratio']:.1f}"
    lines += ["", f"Loss (eq. 30, nats per image): recon ({lik['recon']}) {loss['recon']:.3f} + beta "
                  f"{loss['beta']:g} x KL {loss['kl']:.3f} = {loss['total']:.3f}   (recon/KL {ratio})",
              "KL per latent dimension: " + ", ".join(f"z{j}: {v:.3f}" for j, v in enumerate(report["kl_per_dim"]))]
    au = report["active_units"]
    lines.append(f"Active units (Var_x E_q[z_j] > {au['threshold']:g}, over {au['over']}): "
                 f"{au['count']} of {au['latent_dim']}   ["
                 + ", ".join(f"z{j}: {v:.3g}{'' if a else ' (inactive)'}"
                             for j, (v, a) in enumerate(zip(au["variances"], au["active"]))) + "]")
    return "\n".join(lines)


# -- the command ------------------------------------------------------------------------------
def run_dataset(path):
    """The data set of the run holding ``path`` (a run directory or a model file in one), or
    None when there is no readable config.json beside it."""
    directory = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    try:
        return RunDirectory(directory).dataset
    except (OSError, ValueError):
        return None


def open_or_build(run_dir=None, kind=None, latent_dim=2, seed=0):
    """-> (model, where it came from): the model of ``run_dir`` (which must hold ``kind``
    when given), or a freshly initialised one of ``kind`` (default vae) seeded by ``seed``."""
    if run_dir is not None:
        return open_model(run_dir, expect_kind=kind), f"loaded from {run_dir}"
    config = model_config(kind or "vae", latent_dim)
    return (build_model(config, rng=np.random.default_rng(seed)),
            f"freshly initialised (seed {seed}, untrained)")


def inspect_run(run_dir=None, kind=None, latent_dim=2, batch_size=128, beta=1.0, dataset=None,
                data_root=None, download=False, active_images=2000, seed=0, save=None, log=print):
    """`npvae inspect`: the report of one batch through a run's model (or a fresh one), printed
    with ``log``, and written as strict JSON to ``save`` when given. Returns the report."""
    if batch_size < 1:
        raise ValueError("--batch-size must be >= 1")
    if active_images < 0:
        raise ValueError("--active-images must be >= 0")
    model, source = open_or_build(run_dir, kind, latent_dim, seed)
    dataset = dataset or (run_dataset(run_dir) if run_dir is not None else None) or "mnist"
    rng = np.random.default_rng(seed)
    images, labels, au_images, au_labels, description = load_batch(
        dataset, batch_size, rng, data_root, download, active_images)
    if description.startswith("synthetic"):
        log(f"note: {description}; the statistics below describe synthetic input, not {dataset}.")
    eps = rng.standard_normal((len(images), model.latent_dim)).astype(model.dtype)
    report = inspect_model(model, images, labels, eps, beta=beta, au_images=au_images,
                           au_labels=au_labels, source=source, data=description)
    log(format_report(report))
    if save:
        atomic_write_text(save, json_text(report))
        log(f"\nsaved {save}")
    return report
