"""Figure 10: gradient flow, seen. Per layer, at the start and at the end of training: the
gradient norms of the weights and of the layer's input, the activations' mean and spread,
and the fraction of zeros after each ReLU (npvae.diagnostics.gradient_flow computes them).

A gradient norm that falls by decades from the decoder back to the encoder is a vanishing
gradient; a ReLU whose outputs are all zero for some units on every image has dead units.
"""
import numpy as np

from ..diagnostics.gradient_flow import run_training_stages, training_stages
from ..runs import RunDirectory
from .images import new_figure, save_figure

FILENAME = "10_gradient_flow.png"
BATCH = 128
STAGE_COLORS = ("#1f77b4", "#d62728")       # start, end
STAGE_MARKERS = ("o", "s")


def _series(report, names, value):
    by_name = {layer["name"]: layer for layer in report["layers"]}
    out = [value(by_name[name]) if name in by_name else None for name in names]
    return np.array([np.nan if v is None or v <= 0 else v for v in out], dtype=float)


def _weight_norm(layer):
    return layer["grad_param_norms"].get("weight")


def _categorical(ax, names):
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    ax.grid(alpha=0.3)


def gradient_flow_figure(stages, title=None):
    """``stages``: [(label, report)] as npvae.diagnostics.gradient_flow.training_stages
    returns them (one or two) -> a Figure of four panels."""
    reference = stages[-1][1]
    layers = reference["layers"]
    weighted = [layer["name"] for layer in layers if "weight" in layer["grad_param_norms"]]
    flowing = [layer["name"] for layer in layers if layer["grad_input_norm"] is not None]
    relus = [layer["name"] for layer in layers if layer["type"].startswith("ReLU")]
    every = [layer["name"] for layer in layers]
    learned = "pixel_logvar" in reference["parameters"]

    fig = new_figure(13, 8.6)
    (ax_w, ax_g), (ax_a, ax_z) = fig.subplots(2, 2)
    width = 0.8 / len(stages)
    for k, (label, report) in enumerate(stages):
        color, marker = STAGE_COLORS[k % 2], STAGE_MARKERS[k % 2]
        weights = _series(report, weighted, _weight_norm)
        if learned:
            weights = np.append(weights, report["parameters"]["pixel_logvar"] or np.nan)
        ax_w.plot(range(len(weights)), weights, color=color, marker=marker, lw=1.4, label=label)
        ax_g.plot(range(len(flowing)), _series(report, flowing, lambda layer: layer["grad_input_norm"]),
                  color=color, marker=marker, lw=1.4, label=label)
        by_name = {layer["name"]: layer for layer in report["layers"]}
        means = np.array([by_name[n]["activation"]["mean"] for n in every])
        stds = np.array([by_name[n]["activation"]["std"] for n in every])
        offset = (k - (len(stages) - 1) / 2) * 0.2
        ax_a.errorbar(np.arange(len(every)) + offset, means, yerr=stds, color=color, marker=marker,
                      ms=4, lw=0, elinewidth=1.2, capsize=2, label=label)
        zeros = np.array([by_name[n]["activation"]["zero_fraction"] for n in relus])
        dead = np.array([by_name[n]["activation"].get("dead_fraction", 0.0) for n in relus])
        x = np.arange(len(relus)) + (k - (len(stages) - 1) / 2) * width
        ax_z.bar(x, zeros, width, color=color, alpha=0.45, label=f"{label}: zeros")
        ax_z.bar(x, dead, width, color=color, hatch="//", edgecolor="white", label=f"{label}: dead units")

    ax_w.set_yscale("log")
    ax_w.set_title("Gradient norm of each layer's weights $\\|\\partial L / \\partial W\\|$", fontsize=11)
    _categorical(ax_w, weighted + (["pixel_logvar"] if learned else []))
    ax_g.set_yscale("log")
    ax_g.set_title("Gradient norm reaching each layer's input $\\|\\partial L / \\partial x\\|$\n"
                   "(backward runs right to left)", fontsize=11)
    _categorical(ax_g, flowing)
    ax_a.axhline(0, color="#888", lw=0.8)
    ax_a.set_title("Activations: mean $\\pm$ std of each layer's output", fontsize=11)
    _categorical(ax_a, every)
    ax_z.set_ylim(0, 1.3)                 # room for the legend above the bars
    ax_z.set_yticks(np.linspace(0, 1, 6))
    ax_z.set_title("After each ReLU: fraction of zeros (light) and of dead units (hatched)", fontsize=11)
    _categorical(ax_z, relus)
    for ax in (ax_w, ax_g, ax_a):
        ax.legend(fontsize=8, loc="best")
    ax_z.legend(fontsize=7, loc="upper center", ncol=2)
    model = reference["model"]
    batch = reference["batch"]
    fig.suptitle(title or (f"Gradient flow through the {model['kind'].upper()} (latent {model['latent_dim']}): "
                           f"one training step on {batch['size']} images, beta {reference['loss']['beta']:g}"),
                 fontsize=12)
    return fig


def figure_from_run(run, rng):
    """Figure 10 of `npvae plot`: ``run`` is an npvae.viz.Run; a batch of its test set."""
    images, labels = run.test
    pick = np.sort(rng.choice(len(images), size=min(BATCH, len(images)), replace=False))
    return gradient_flow_figure(training_stages(run.run_dir, images[pick], labels[pick], rng))


def draw_gradient_flow(run_dir, batch_size=BATCH, seed=0, data_root=None, download=False, beta=1.0):
    """`npvae inspect RUN_DIR --plot`: draw the figure into RUN_DIR/figures/; returns its path."""
    stages, description = run_training_stages(run_dir, batch_size, seed, data_root, download, beta)
    fig = gradient_flow_figure(stages)
    if description.startswith("synthetic"):
        fig.text(0.5, 0.005, f"input: {description}", ha="center", fontsize=8, color="#a00")
    path = RunDirectory(run_dir).figure_path(FILENAME)
    save_figure(fig, path)
    return path
