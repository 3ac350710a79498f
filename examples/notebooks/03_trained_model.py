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
# # 3. Looking at a trained model
#
# npvae ships the two models of the paper's Table 4, trained with its settings (Table 3: latent
# dimension 2, batch 128, Adam $10^{-3}$, 30 epochs, KL warm-up over 10, seed 0). This notebook
# loads them, with no training, and looks at what they learned:
#
# 1. **reconstructions** and the **latent space**: where the encoder puts the test digits
#    (the paper's Fig. 2), for the VAE and for the CVAE;
# 2. **traversals** and **interpolations**: the decoder over a grid of $z$ and along a line
#    between two digits' codes (Fig. 3-4);
# 3. the CVAE's **style transfer**: one digit's $z$ decoded as every class (Fig. 5, section 3.2);
# 4. **the IWAE bound against the ELBO** for a few test digits: how far the ELBO (eq. 4-10) sits
#    below $\log p(x)$, and how the importance-weighted bound closes the gap (eq. 11-16);
# 5. **gradient flow** through one training step (eq. 30) at the start and at the end of training.
#
# The theory: [docs/derivations.md, sections 2-3](../../docs/derivations.md#2-the-elbo-eq-410)
# (the ELBO and its gap) and [section 13](../../docs/derivations.md#13-the-cvae-eq-2729) (the CVAE).
# Every cell runs in seconds; change a number and run it again.

# %%
import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Circle

from npvae.data import load_dataset, to_float
from npvae.diagnostics.gradient_flow import training_stages
from npvae.diagnostics.inspect import synthetic_digits
from npvae.evaluation import evaluate_iwae, posterior_means
from npvae.models import load_pretrained
from npvae.pretrained import provenance
from npvae.runs import PAPER_TABLE4, RunDirectory
from npvae.viz.gradient_flow import gradient_flow_figure
from npvae.viz.images import CLASS_COLORS, show_digits

# NPVAE_NOTEBOOK_QUICK=1 (set by the test suite) shrinks the sample sizes; the pictures are the same kind.
QUICK = os.environ.get("NPVAE_NOTEBOOK_QUICK") == "1"
rng = np.random.default_rng(0)

# %% [markdown]
# ## The models
#
# `load_pretrained` checks the shipped files against their SHA-256 checksums and rebuilds the
# model. The training command, the code commit and the final epoch's metrics come with them:

# %%
vae = load_pretrained("vae")
cvae = load_pretrained("cvae")
for name, model in (("vae", vae), ("cvae", cvae)):
    record = provenance(name)
    last = record["final_epoch"]
    paper = PAPER_TABLE4[name]
    print(f"{name.upper():4} {model.num_parameters():,} parameters; trained by `{record['command']}` "
          f"at commit {record['commit']}")
    print(f"     epoch {last['epoch']}: train recon {last['train_recon']:.2f}  KL {last['train_kl']:.2f}"
          f"  total {last['train_total']:.2f}   (paper: {paper[0]:.2f} / {paper[1]:.2f} / {paper[2]:.2f});"
          f"  test -ELBO {last['test_total']:.2f}")

# %% [markdown]
# The same models as run directories, for the command line's tools
# (`npvae pretrained vae --out DIR` does this too):

# %%
run_dir = os.path.join(tempfile.mkdtemp(), "vae-pretrained")
load_pretrained("vae", out_dir=run_dir)
print(sorted(os.listdir(run_dir)), "; metrics of", len(RunDirectory(run_dir).read_metrics()), "epochs")
print(f"try: npvae report {run_dir}   (every figure of the paper, in one HTML page)")

# %% [markdown]
# ## Test digits
#
# MNIST's test set when it is on this machine (`NPVAE_DATA`, or `~/.cache/npvae`); otherwise
# synthetic strokes, so that every cell still runs, though the pictures then mean little.

# %%
try:
    images, labels = load_dataset("mnist", "test", download=False)
    source = "MNIST test set"
except (OSError, ValueError):
    images, labels = synthetic_digits(2000, rng)
    source = "synthetic strokes (no MNIST found: set NPVAE_DATA)"
labels = labels.astype(np.int64)
print(f"{len(images):,} images from the {source}")

# %% [markdown]
# ## Reconstructions
#
# Encode each digit to its posterior mean $\mu(x)$ and decode that: with only two numbers per
# image in between, the VAE keeps identity and pose and blurs the detail. The CVAE is given the
# label on both sides, so its two numbers only need to hold the style.

# %%
pick = rng.choice(len(images), size=12, replace=False)
x = to_float(images[pick])
rows = [images[pick] / 255.0, vae.reconstruct(x)[:, 0], cvae.reconstruct(x, labels[pick])[:, 0]]
fig, ax = plt.subplots(figsize=(10, 3))
show_digits(ax, np.concatenate(rows), 3, 12, row_labels=["input", "VAE", "CVAE"])
plt.show()

# %% [markdown]
# ## The latent space (the paper's Fig. 2)
#
# Each test digit's posterior mean, coloured by its class. The VAE was never shown a label, yet
# the classes form regions, look-alikes side by side; the dashed circles are 1 and 2 standard
# deviations of the prior $\mathcal N(0, I)$ that the KL term pulls the codes towards. The CVAE's
# codes do not need to carry the class, so the classes overlap.

# %%
count = 1000 if QUICK else 5000
sample = np.sort(rng.choice(len(images), size=min(count, len(images)), replace=False))
fig, axes = plt.subplots(1, 2, figsize=(11, 5), layout="constrained")
for ax, (name, model) in zip(axes, (("VAE", vae), ("CVAE", cvae))):
    means = posterior_means(model, images[sample], labels[sample])
    for k in range(10):
        here = labels[sample] == k
        ax.scatter(means[here, 0], means[here, 1], s=3, color=CLASS_COLORS[k], label=str(k))
    for radius in (1, 2):
        ax.add_patch(Circle((0, 0), radius, fill=False, ls="--", color="0.4"))
    ax.set(title=f"{name}: {len(sample):,} test digits' mu(x)", xlabel="$z_1$", ylabel="$z_2$", aspect="equal")
axes[0].legend(markerscale=4, ncol=2, fontsize=8)
plt.show()

# %% [markdown]
# ## Traversal (Fig. 3)
#
# The decoder over a regular grid of $z$: every cell is a digit, and neighbouring cells change
# smoothly, because the KL term made the codes fill the prior without gaps. Try `RANGE = 6`: far
# outside the prior's mass the decoder has seen no codes and draws what it extrapolates.

# %%
RANGE, STEPS = 3.0, 13
values = np.linspace(-RANGE, RANGE, STEPS)
z2, z1 = np.meshgrid(values[::-1], values, indexing="ij")                 # top row: largest z2
grid = np.stack([z1.ravel(), z2.ravel()], axis=1)
fig, ax = plt.subplots(figsize=(7, 7))
show_digits(ax, vae.decode(grid)[:, 0], STEPS, STEPS, col_labels=[f"{v:g}" for v in values],
            row_labels=[f"{v:g}" for v in values[::-1]], xlabel="$z_1$", ylabel="$z_2$",
            title="VAE decoder over a grid of z")
plt.show()

# %% [markdown]
# ## Interpolation (Fig. 4)
#
# `VAE.interpolate` decodes points on the straight line between two digits' posterior means.
# Pick other classes with `START, END`:

# %%
START, END, STEPS = 3, 8, 10
first = images[np.flatnonzero(labels == START)[0]]
last = images[np.flatnonzero(labels == END)[0]]
path = vae.interpolate(to_float(first[None]), to_float(last[None]), steps=STEPS)[:, 0]
fig, ax = plt.subplots(figsize=(10, 1.6))
show_digits(ax, np.concatenate([first[None] / 255.0, path, last[None] / 255.0]), 1, STEPS + 2,
            col_labels=["real"] + [f"{t:.2f}" for t in np.linspace(0, 1, STEPS)] + ["real"],
            separate_after=(0, STEPS), title=f"VAE: from a {START} to an {END}")
plt.show()

# %% [markdown]
# ## The CVAE's style transfer (Fig. 5)
#
# Encode a real digit *with its label* to get $z$, then decode the same $z$ with every label.
# Since the label already says which digit it is, $z$ has learned to hold what the label does
# not: slant, width, stroke thickness. Every row keeps its input's style across the ten classes.

# %%
STYLES = 4
sources = rng.choice(len(images), size=STYLES, replace=False)
z = posterior_means(cvae, images[sources], labels[sources])
every_class = np.tile(np.arange(10), STYLES)
transferred = cvae.decode(np.repeat(z, 10, axis=0), every_class)[:, 0].reshape(STYLES, 10, 28, 28)
panel = np.concatenate([images[sources][:, None] / 255.0, transferred], axis=1)
fig, ax = plt.subplots(figsize=(10, 1 + STYLES))
show_digits(ax, panel.reshape(-1, 28, 28), STYLES, 11, col_labels=["input"] + [str(k) for k in range(10)],
            row_labels=[f"a real {k}" for k in labels[sources]], separate_after=(0,),
            xlabel="label given to the decoder", title="CVAE: one z, every label")
plt.show()

# %% [markdown]
# ## How tight is the ELBO? IWAE against the ELBO
#
# Training maximises the ELBO, a lower bound: $\log p(x) = \text{ELBO}(x) + \mathrm{KL}(q(z\mid x)\,\|\,p(z\mid x))$
# (eq. 11-16). The importance-weighted bound (Burda et al., 2016) averages $K$ weights
# $w_k = p(x\mid z_k)\,p(z_k)/q(z_k\mid x)$ with $z_k \sim q(z\mid x)$ inside the log:
#
# $$\text{IWAE}_K = \log \frac1K\sum_{k=1}^K w_k \;\le\; \log p(x),$$
#
# equal to a one-sample ELBO for $K = 1$, never smaller in expectation as $K$ grows, and tending to
# $\log p(x)$. `npvae.evaluation.evaluate_iwae` computes it (`npvae evaluate RUN_DIR --iwae-k K`
# does it for the whole test set). For a few test digits:

# %%
DIGITS = 4 if QUICK else 6
KS = (1, 10, 100) if QUICK else (1, 10, 100, 1000)
chosen = np.arange(DIGITS)
estimates = {k: evaluate_iwae(vae, images[chosen], labels[chosen], k, rng=np.random.default_rng(1),
                              progress=False, workers=1) for k in KS}
print(f"{'digit':>5} {'label':>5}  {'mean log w (ELBO)':>18}  " + "  ".join(f"{'IWAE-' + str(k):>10}" for k in KS))
for i in chosen:
    print(f"{i:5d} {labels[i]:5d}  {estimates[KS[-1]]['elbo'][i]:18.2f}  "
          + "  ".join(f"{estimates[k]['log_px'][i]:10.2f}" for k in KS))
gap = estimates[KS[-1]]["log_px"] - estimates[KS[-1]]["elbo"]
print(f"\nIWAE-{KS[-1]} - ELBO: {np.round(gap, 2)} nats: the part of KL(q || p(z|x)) that K draws recover")

# %%
elbo = estimates[KS[-1]]["elbo"]          # the mean of the largest K's log-weights: a precise ELBO
fig, ax = plt.subplots(figsize=(6, 3.6))
for i in chosen:
    ax.plot(KS, [estimates[k]["log_px"][i] - elbo[i] for k in KS], marker="o", label=f"digit {i} (a {labels[i]})")
ax.axhline(0, color="0.5", lw=0.8)
ax.set(xscale="log", xlabel="K (importance samples)", ylabel="IWAE$_K$ - ELBO (nats)",
       title="The bound rises above the ELBO as K grows")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# At $K = 1$ the estimate is a single draw of $\log w$, scattered around the ELBO; as $K$ grows it
# climbs towards $\log p(x)$. How far it climbs is $\mathrm{KL}(q(z\mid x)\,\|\,p(z\mid x))$, the
# ELBO's gap, and it differs from digit to digit: small where the Gaussian $q$ with a diagonal
# covariance fits the true posterior of the 2-D latent well, larger where that posterior is
# skewed or has two modes, for example. With $d = 2$ the posterior can also be integrated
# on a grid, which gives $\log p(x)$ almost exactly: `npvae evaluate RUN_DIR --grid` prints it
# beside IWAE.
#
# ## Gradient flow, from the first step to the last
#
# Notebook 2 traced one training step through a freshly initialised VAE. The same step through
# the trained one, beside the initial model (rebuilt from the run's seed exactly as training
# built it), on the same images and noise: per layer, the gradient norm of the weights and of the
# layer's input, the activations' mean and spread, and after each ReLU the fraction of zeros and
# of dead units (zero for every image). A gradient that fell by decades on its way back to the
# encoder would be a vanishing gradient; a tall hatched bar, dead units.
# `npvae inspect RUN_DIR --plot` draws the same figure (figure 10 of `npvae plot`).

# %%
batch = np.sort(rng.choice(len(images), size=32 if QUICK else 128, replace=False))
stages = training_stages(run_dir, images[batch], labels[batch], np.random.default_rng(0))
gradient_flow_figure(stages)

# %% [markdown]
# ## Where next
#
# * `npvae pretrained cvae --out runs/cvae && npvae report runs/cvae`: all of the paper's
#   figures for the CVAE, with its metrics beside Table 4.
# * `npvae inspect runs/cvae`: the trained model layer by layer on one batch (activations,
#   fraction of dead ReLUs, gradient norms), the numbers behind notebook 2's trace.
# * `npvae evaluate runs/cvae --iwae-k 5000`: the IWAE estimate over the whole test set.
