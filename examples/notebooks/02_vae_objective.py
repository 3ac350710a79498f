# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. The VAE objective and one training step
#
# Notebook 1 took the layers apart. This one assembles the paper's VAE and follows its
# objective, the negative ELBO of eq. 30, through to the parameters:
#
# 1. **The closed-form KL** between $q(z\mid x) = \mathcal N(\mu, \operatorname{diag}\sigma^2)$ and
#    $p(z) = \mathcal N(0, I)$ (eq. 17), checked against a Monte Carlo estimate, and its
#    gradients (eq. 22-23) in the paper's $\sigma$ form and in the $\log\sigma^2$ form the code uses.
# 2. **The reparameterisation** $z = \mu + \sigma\odot\epsilon$ (eq. 24) and its Jacobians
#    $\partial z/\partial\mu = I$, $\partial z/\partial\sigma = \operatorname{diag}(\epsilon)$ (eq. 25-26),
#    measured numerically, and why it lets the gradient go inside the expectation.
# 3. **One full training step** of the paper's VAE (Tables 1-2), traced layer by layer:
#    the shape after every layer on the way forward, the gradient norms on the way back.
# 4. **KL annealing** $\beta(t) = \min(1, t/T_\text{warmup})$ (eq. 31), on a short run.
#
# The derivations: [docs/derivations.md, sections 4-6](../../docs/derivations.md#4-the-gaussian-kl-eq-1721)
# (KL, its gradients, the reparameterisation),
# [section 12](../../docs/derivations.md#12-the-loss-eq-30-and-one-training-step) (the loss and one
# step) and [section 14](../../docs/derivations.md#14-kl-annealing-eq-31) (annealing).

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

from npvae.data import load_dataset, to_float
from npvae.diagnostics.flops import layer_type
from npvae.diagnostics.inspect import synthetic_digits
from npvae.evaluation import log_standard_normal
from npvae.gradcheck import finite_difference_check, format_table
from npvae.losses import GaussianKL, NegativeELBO, gaussian_kl, kl_grad_sigma
from npvae.models import VAE
from npvae.nn import Reparameterize, observe
from npvae.optim import Adam, kl_weight
from npvae.runtime import DataParallel
from npvae.training.loop import train_epoch

# NPVAE_NOTEBOOK_QUICK=1 (set by the test suite) shrinks the runs; the lessons are the same.
QUICK = os.environ.get("NPVAE_NOTEBOOK_QUICK") == "1"
np.set_printoptions(precision=4, suppress=True, linewidth=110)
rng = np.random.default_rng(0)


def show(label, results):
    print(format_table([(label, r) for r in results]))
    return results


# %% [markdown]
# ## 1. The Gaussian KL in closed form (eq. 17)
#
# $$\mathrm{KL}(q\,\|\,p) = \tfrac12\sum_{j=1}^d\left(\mu_j^2 + \sigma_j^2 - \log\sigma_j^2 - 1\right)$$
#
# The encoder outputs $\mu$ and $v = \log\sigma^2$ (any real number, so $\sigma = e^{v/2}$ needs no
# constraint). `npvae.losses.gaussian_kl` gives the KL per image. A Monte Carlo estimate,
# $\mathbb E_q[\log q(z) - \log p(z)]$ over many draws $z \sim q$, must agree:

# %%
mu = np.array([[0.0, 0.0], [1.0, -2.0], [0.5, 0.3]])
logvar = np.array([[0.0, 0.0], [0.0, 0.0], [-2.0, 1.0]])
sigma = np.exp(logvar / 2)
draws = 20_000 if QUICK else 200_000
eps = rng.standard_normal((draws, *mu.shape))
z = mu + sigma * eps
log_q = log_standard_normal(eps) - np.sum(np.log(sigma), axis=-1)     # N(z; mu, sigma^2)
log_p = log_standard_normal(z)
print("closed form (eq. 17):", gaussian_kl(mu, logvar))
print("Monte Carlo         :", np.mean(log_q - log_p, axis=0), f"({draws:,} draws)")

# %% [markdown]
# Row 1 is the prior itself (KL 0); row 2 moves the mean, costing $\tfrac12(1 + 4) = 2.5$ nats;
# row 3 also changes the variances. Change `mu` or `logvar` and run again.
#
# ### Its gradients (eq. 22-23)
#
# Term by term: $\partial\,\mathrm{KL}/\partial\mu_j = \mu_j$ (22) and
# $\partial\,\mathrm{KL}/\partial\sigma_j = \sigma_j - 1/\sigma_j$ (23). The code differentiates
# with respect to $v = \log\sigma^2$ instead; since $\partial\sigma/\partial v = \sigma/2$, the chain
# rule turns eq. 23 into $(\sigma - 1/\sigma)\,\sigma/2 = (e^{v} - 1)/2$. `GaussianKL` averages over
# the batch, so both come divided by $N$.

# %%
kl = GaussianKL()
kl.forward(mu, logvar)
grad_mu, grad_logvar = kl.backward()
paper_mu, paper_sigma = kl_grad_sigma(mu, sigma)                       # eq. 22-23, per entry
n = len(mu)
print("dKL/dmu     (code) :", grad_mu.ravel())
print("mu / N     (eq. 22):", (paper_mu / n).ravel())
print("dKL/dlogvar (code) :", grad_logvar.ravel())
print("eq. 23 x sigma/2 / N:", (paper_sigma * sigma / 2 / n).ravel())
show("GaussianKL", finite_difference_check(lambda: GaussianKL().forward(mu, logvar),
                                            {"mu": mu, "logvar": logvar},
                                            {"mu": grad_mu, "logvar": grad_logvar}))

# %% [markdown]
# ## 2. The reparameterisation (eq. 24-26)
#
# Sampling $z \sim \mathcal N(\mu, \sigma^2)$ has no derivative with respect to $\mu$ and $\sigma$.
# Writing $z = \mu + \sigma\odot\epsilon$ with $\epsilon \sim \mathcal N(0, I)$ drawn *independently of the
# parameters* moves the randomness out of the way: $z$ becomes an ordinary function of $\mu$ and
# $\sigma$, with Jacobians $\partial z/\partial\mu = I$ (25) and $\partial z/\partial\sigma = \operatorname{diag}(\epsilon)$ (26).
# Measured by finite differences for one image with $d = 3$:

# %%
layer = Reparameterize()
mu1 = np.array([[0.3, -1.0, 2.0]])
sigma1 = np.array([[0.5, 1.5, 0.1]])
eps1 = rng.standard_normal(mu1.shape)


def z_of(mu, sigma):
    return layer.forward(mu, np.log(sigma ** 2), eps1)[0]


h = 1e-6
jac_mu = np.stack([(z_of(mu1 + h * e, sigma1) - z_of(mu1 - h * e, sigma1)) / (2 * h)
                   for e in np.eye(3)[:, None]], axis=1)
jac_sigma = np.stack([(z_of(mu1, sigma1 + h * e) - z_of(mu1, sigma1 - h * e)) / (2 * h)
                      for e in np.eye(3)[:, None]], axis=1)
print("eps:", eps1.ravel())
print("dz/dmu (numerical):\n", jac_mu)
print("dz/dsigma (numerical):\n", jac_sigma)
assert np.allclose(jac_mu, np.eye(3), atol=1e-6) and np.allclose(jac_sigma, np.diag(eps1[0]), atol=1e-6)

# %% [markdown]
# Both diagonal: $z_j$ depends only on $\mu_j$ and $\sigma_j$. So the backward pass needs no matrix at
# all: $\partial L/\partial\mu = g$, $\partial L/\partial\sigma = g\odot\epsilon$, and through $\sigma = e^{v/2}$,
# $\partial L/\partial v = g\odot\epsilon\odot\sigma/2$. The layer's backward, checked:

# %%
mu2, logvar2 = rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
eps2, g = rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
layer.forward(mu2, logvar2, eps2)
g_mu, g_logvar = layer.backward(g)
show("Reparameterize", finite_difference_check(
    lambda: float(np.sum(Reparameterize().forward(mu2, logvar2, eps2) * g)),
    {"mu": mu2, "logvar": logvar2}, {"mu": g_mu, "logvar": g_logvar}))

# %% [markdown]
# **Why it matters.** Because $\epsilon$ does not depend on the parameters,
# $\nabla\,\mathbb E_q[f(z)] = \mathbb E_\epsilon[\nabla f(\mu + \sigma\epsilon)]$: the average of
# per-sample backward passes is an unbiased gradient of the expectation. Take $f(z) = z^2$, whose
# expectation $\mu^2 + \sigma^2 = \mu^2 + e^{v}$ has gradients $2\mu$ and $e^{v}$:

# %%
samples = 20_000 if QUICK else 200_000
mu3 = np.full((samples, 1), 0.7)
logvar3 = np.full((samples, 1), np.log(0.25))
z3 = layer.forward(mu3, logvar3, rng.standard_normal((samples, 1)))
g_mu, g_logvar = layer.backward(2 * z3)                        # df/dz = 2z, one sample each
print(f"mean of per-sample gradients: d/dmu {g_mu.mean():.4f}, d/dlogvar {g_logvar.mean():.4f}")
print(f"exact gradients of E[z^2]   : d/dmu {2 * 0.7:.4f}, d/dlogvar {0.25:.4f}")

# %% [markdown]
# ## 3. One training step of the paper's VAE, layer by layer
#
# The loss (eq. 30) is, per image, the BCE of section 5 of notebook 1 plus $\beta$ times the KL,
# averaged over the batch. Its gradient reaches the encoder along two paths: through the decoder,
# $z$ and the reparameterisation (the reconstruction), and directly onto $\mu$ and $\log\sigma^2$
# (the KL). `npvae.nn.observe(model, forward=..., backward=...)` calls a function after every
# layer of the model's own `forward` and `backward`, with the layer's name and the live arrays;
# `npvae inspect` takes its statistics the same way. A batch of test digits (or synthetic
# strokes when MNIST is not on this machine):

# %%
BATCH = 16 if QUICK else 64
try:
    test_images, test_labels = load_dataset("mnist", "test", download=False)
    source = "MNIST test digits"
except (OSError, ValueError):       # no MNIST here: stand-in strokes, same shapes
    test_images, test_labels = synthetic_digits(2000, rng)
    source = "synthetic strokes (MNIST not found: set NPVAE_DATA)"
pick = rng.choice(len(test_images), size=BATCH, replace=False)
x = to_float(test_images[pick])                                       # (N, 1, 28, 28) in [0, 1]
print(f"batch: {BATCH} {source}, x {x.shape} {x.dtype}")

model = VAE(latent_dim=2, rng=0)
eps = rng.standard_normal((BATCH, model.latent_dim), dtype=np.float32)
print(f"{'step':<15} {'layer':<28} {'input':>14} {'output':>14} {'mean':>8} {'zeros':>6}")


def after_forward(name, layer, input_shape, output):
    shape = lambda s: "x".join(map(str, s[1:]))       # noqa: E731 (per image)
    print(f"{name:<15} {layer_type(layer):<28} {shape(input_shape):>14} {shape(output.shape):>14} "
          f"{float(output.mean()):8.3f} {float(np.mean(output == 0)):6.0%}")


with observe(model, forward=after_forward):
    logits, mu, logvar = model.forward(x, eps)

# %% [markdown]
# Three stride-2 convolutions take 28 x 28 to 4 x 4 (Table 1), two Linear heads give $\mu$ and
# $\log\sigma^2$ (2 numbers each), and the decoder mirrors the encoder back to 784 logits (Table 2).
# "zeros" is the fraction of units a ReLU switched off.
#
# The loss, its gradient with respect to the logits, $\mu$ and $\log\sigma^2$, and the way back. For
# each layer: the norm of the gradient it passes down and of its parameters' gradients.

# %%
beta = 1.0
objective = NegativeELBO()
total, recon, kl_value = objective.forward(logits, x, mu, logvar, beta)
print(f"loss = recon {recon:.2f} + beta {beta} x KL {kl_value:.3f} = {total:.2f} nats per image")
grad_logits, grad_mu, grad_logvar = objective.backward()
print(f"dL/dlogits {grad_logits.shape}: (sigmoid(l) - x) / N;  dL/dmu, dL/dlogvar {grad_mu.shape}: the KL's")

norm = lambda a: float(np.sqrt(np.sum(np.square(a, dtype=np.float64))))   # noqa: E731
print(f"\n{'step':<15} {'|dL/d input|':>13}   parameter gradient norms")
model.zero_grad()


def after_backward(name, layer, grad_input):
    if grad_input is None:
        down = "(image: none)"
    elif isinstance(grad_input, tuple):                 # the reparameterisation: (d/dmu, d/dlogvar)
        down = f"{norm(grad_input[0]):.2e},{norm(grad_input[1]):.1e}"
    else:
        down = f"{norm(grad_input):.3e}"
    params = "  ".join(f"{n} {norm(p.grad):.3e}" for n, p in layer.named_parameters())
    print(f"{name:<15} {down:>13}   {params}")


with observe(model, backward=after_backward):
    model.backward(grad_logits, grad_mu, grad_logvar)

# %% [markdown]
# Read it bottom-up, the order in which the gradient travels: from the decoder's last layer,
# through $z$ (the `reparameterize` row shows $|\partial L/\partial\mu|$ and $|\partial L/\partial\log\sigma^2|$ of
# the reconstruction path), into the two heads, where the KL's own gradients join, and down the
# encoder. The first convolution passes nothing further: the image is data, not a parameter.
#
# The parameter gradients are now in every `Parameter.grad`, exactly as a training step leaves
# them. Finally the step itself: Adam (PyTorch's update, learning rate $10^{-3}$) moves every parameter,
# and the loss on the same batch with the same $\epsilon$ goes down.

# %%
optimizer = Adam(model.parameters(), lr=1e-3)
losses = []
for step in range(5):
    logits, mu, logvar = model.forward(x, eps)
    total, recon, kl_value = objective.forward(logits, x, mu, logvar, beta)
    losses.append(total)
    optimizer.zero_grad()
    model.backward(*objective.backward())
    optimizer.step()
print("loss on this batch after 0, 1, 2, ... steps:", np.round(losses, 2))
assert losses[-1] < losses[0]

# %% [markdown]
# ## 4. KL annealing (eq. 31)
#
# $\beta(t) = \min(1, t / T_\text{warmup})$ with $t$ the epoch, counted from 1. In the paper
# ($T_\text{warmup} = 10$, 30 epochs) the first epoch trains with $\beta = 0.1$:

# %%
print("paper's beta per epoch:", [kl_weight(epoch, 10) for epoch in range(1, 13)], "...")

# %% [markdown]
# A short run shows what the warm-up does. Two fresh VAEs train on the same few hundred images
# with the same seeds, one with a warm-up and one with $\beta = 1$ from the first step; the
# columns are each epoch's mean reconstruction and KL (before $\beta$). With a small $\beta$ early, the
# encoder may spend more nats on the KL to buy a better reconstruction; as $\beta$ reaches 1 the
# two runs' objectives become the same. Change `IMAGES`, `EPOCHS` or `WARMUP` and re-run.

# %%
IMAGES, EPOCHS, WARMUP, BATCH_SIZE = (256, 3, 2, 32) if QUICK else (1000, 8, 4, 64)
try:
    train_images, train_labels = load_dataset("mnist", "train", download=False)
except (OSError, ValueError):
    train_images, train_labels = test_images, test_labels
train_images, train_labels = train_images[:IMAGES], train_labels[:IMAGES].astype(np.int64)


def short_run(warmup):
    model = VAE(latent_dim=2, rng=np.random.default_rng(1))
    optimizer = Adam(model.parameters(), lr=1e-3)
    shuffle_rng, noise_rng = np.random.default_rng(2), np.random.default_rng(3)
    rows = []
    with DataParallel(model) as parallel:         # one worker per core, as `npvae train` runs
        for epoch in range(1, EPOCHS + 1):
            beta = kl_weight(epoch, warmup)
            recon, kl_value, _ = train_epoch(model, optimizer, train_images, train_labels, BATCH_SIZE,
                                             lambda step: beta, shuffle_rng, noise_rng, parallel=parallel)
            rows.append((epoch, beta, recon, kl_value))
    return np.array(rows)


annealed, constant = short_run(WARMUP), short_run(0)
print(f"{'epoch':>5} | {'beta':>5} {'recon':>8} {'KL':>6} | {'beta':>5} {'recon':>8} {'KL':>6}")
print(f"{'':>5} | {'warm-up T = ' + str(WARMUP):^21} | {'beta = 1 throughout':^21}")
for a, c in zip(annealed, constant):
    print(f"{int(a[0]):5d} | {a[1]:5.2f} {a[2]:8.2f} {a[3]:6.2f} | {c[1]:5.2f} {c[2]:8.2f} {c[3]:6.2f}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), layout="constrained")
for rows, name in ((annealed, f"warm-up {WARMUP} epochs"), (constant, "beta = 1")):
    for ax, column, title in zip(axes, (1, 2, 3), ("beta (eq. 31)", "reconstruction (nats)", "KL (nats)")):
        ax.plot(rows[:, 0], rows[:, column], marker="o", label=name)
        ax.set_title(title)
        ax.set_xlabel("epoch")
axes[0].legend()
plt.show()

# %% [markdown]
# On the full data set and 30 epochs, this is the paper's Fig. 1; `npvae train` then
# `npvae plot RUN_DIR` draws it, and notebook 3 starts from the two runs the paper reports.
