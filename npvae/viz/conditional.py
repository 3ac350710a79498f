"""CVAE-only figures: class-conditional samples, the disentanglement panels (paper Fig. 5)
and the class-mixed latent space (section 5.3.3)."""
import numpy as np

from .images import CLASS_COLORS, digits_figure, new_figure, show_digits
from .latent import TRAVERSAL_RANGE, prior_circles, scatter_latent

DEFAULT_CLASS = 2  # the class of the class-conditional traversals


def class_samples_figure(run, rng, columns=10):
    """Figure 7: one row per class, one z ~ N(0, I) per column shared by every row."""
    classes = run.model.num_classes
    z = rng.standard_normal((columns, run.latent_dim))
    images = run.decode(np.tile(z, (classes, 1)), np.repeat(np.arange(classes), columns))
    fig, ax = digits_figure(classes, columns, 7.6, 1.2, 1.0)
    show_digits(ax, images, classes, columns, row_labels=list(run.class_names),
                col_labels=[f"#{c + 1}" for c in range(columns)],
                xlabel="column: one draw $z \\sim \\mathcal{N}(0, I)$, shared by every row",
                ylabel="label given to the decoder")
    ax.set_title("CVAE class-conditional samples: rows keep the class, columns keep the style",
                 fontsize=11)
    return fig


def disentanglement_figure(run, rng, label=DEFAULT_CLASS, pair=(1, 7), steps=10, styles=3):
    """Figure 8 (paper Fig. 5): (a) one latent interpolation decoded as two classes;
    (b) fixed z decoded as every class; (c) style transfer from real digits;
    (d) traversals of the latent plane for one class."""
    images, labels = run.test
    classes = run.model.num_classes
    names = run.class_names
    every = np.arange(classes)

    # (a) the same z path, decoded with two labels, between two encoded test digits of
    # contrasting style: the farthest-apart pair among 200 seeded candidates inside 2 sigma
    means = run.latent()["means"].astype(np.float64)
    candidates = rng.choice(len(means), size=min(200, len(means)), replace=False)
    inside = candidates[np.linalg.norm(means[candidates], axis=1) < 2.0]
    candidates = inside if len(inside) >= 2 else candidates
    gaps = np.linalg.norm(means[candidates, None] - means[None, candidates], axis=2)
    first, second = np.unravel_index(np.argmax(gaps), gaps.shape)
    mu = means[candidates[[first, second]]]
    t = np.linspace(0.0, 1.0, steps)
    path = (1 - t)[:, None] * mu[0] + t[:, None] * mu[1]
    panel_a = np.concatenate([run.decode(path, pair[0]), run.decode(path, pair[1])])

    # (b) fixed z, every class
    fixed = rng.standard_normal((2, run.latent_dim))
    panel_b = run.decode(np.repeat(fixed, classes, axis=0), np.tile(every, 2))

    # (c) style transfer: encode a real digit with its label, decode its z as every class
    source_classes = rng.choice(classes, size=styles, replace=False)
    sources = np.array([run.examples(c, 1, rng)[0] for c in source_classes])
    z = run.encode_means(images[sources], labels[sources])
    transferred = run.decode(np.repeat(z, classes, axis=0), np.tile(every, styles))
    panel_c = np.concatenate([images[sources][:, None] / 255.0,
                              transferred.reshape(styles, classes, 28, 28)], axis=1)

    # (d) class-conditional traversals along each axis of the latent plane
    values = np.linspace(-TRAVERSAL_RANGE, TRAVERSAL_RANGE, 9)  # steps of 0.75
    zero = np.zeros_like(values)
    sweeps = [run.plane(values, zero)] + ([run.plane(zero, values)] if run.latent_dim > 1 else [])
    panel_d = run.decode(np.concatenate(sweeps), label)
    short = ["$z_1$", "$z_2$"] if run.latent_dim <= 2 else ["PC 1", "PC 2"]

    heights = [2, 2, styles, len(sweeps)]
    fig = new_figure(8.8, 2.1 * sum(heights) / 2 + 2.4)
    axes = fig.subplots(4, 1, height_ratios=[h + 0.9 for h in heights])
    show_digits(axes[0], panel_a, 2, steps, row_labels=[f"label {names[pair[0]]}", f"label {names[pair[1]]}"],
                col_labels=[f"{v:.2f}" for v in t], xlabel="interpolation weight t",
                title=f"(a) one latent interpolation (between two test {run.noun}s' codes far apart), "
                      f"decoded as {names[pair[0]]} and as {names[pair[1]]}")
    show_digits(axes[1], panel_b, 2, classes, row_labels=["fixed z #1", "fixed z #2"],
                col_labels=list(names), xlabel="label given to the decoder",
                title="(b) a fixed $z \\sim \\mathcal{N}(0, I)$ decoded as every class")
    show_digits(axes[2], panel_c.reshape(-1, 28, 28), styles, classes + 1,
                row_labels=[f"real {names[c]}" for c in source_classes],
                col_labels=["input"] + list(names), separate_after=(0,),
                xlabel="label given to the decoder",
                title=f"(c) style transfer: a real {run.noun}'s z (encoded with its label) decoded as every class")
    show_digits(axes[3], panel_d, len(sweeps), len(values),
                row_labels=[f"vary {s}" for s in short[:len(sweeps)]],
                col_labels=[f"{v:g}" for v in values],
                xlabel="coordinate along the varied axis (the other is 0)" if run.latent_dim <= 2
                else "coordinate along the varied principal direction of the test means (the rest 0)",
                title=f"(d) class-conditional traversals: label {names[label]} fixed")
    fig.suptitle("CVAE disentanglement: the label sets the class, z sets the style", fontsize=12)
    return fig


def latent_mixing_figure(run, rng=None):
    """Figure 9 (section 5.3.3): each class's test means against all of them; with the label
    given separately, every class should spread over the same region as the prior."""
    classes = len(run.class_names)
    fig = new_figure(13, 6.2)
    axes = fig.subplots(2, (classes + 1) // 2, sharex=True, sharey=True)
    short = ["$z_1$", "$z_2$"] if run.latent_dim <= 2 else ["PC 1", "PC 2"]
    for k, ax in enumerate(axes.ravel()):
        if k >= classes:
            ax.set_visible(False)
            continue
        coords = scatter_latent(ax, run, only=k, background=True, size=3, equal=False)
        if run.latent_dim >= 2:
            prior_circles(ax, label=False)
            ax.set_aspect("equal", adjustable="box")
            reach = max(2.3, 1.08 * float(np.percentile(np.abs(coords), 99.5)))
            ax.set_xlim(-reach, reach)
            ax.set_ylim(-reach, reach)
        ax.set_title(f"class {run.class_names[k]}", fontsize=10, color=CLASS_COLORS[k])
        ax.set_xlabel(short[0] if ax.get_subplotspec().is_last_row() else "")
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel(short[1] if run.latent_dim > 1 else "class")
    what = "" if run.latent_dim <= 2 else f" (PCA of the {run.latent_dim}-D means: {', '.join(short)})"
    fig.suptitle(f"CVAE latent space by class{what}: each class (colour) over the density of all "
                 f"{len(run.latent()['labels']):,} test means (grey);\nclasses should look mixed, "
                 f"each covering the prior's 1σ/2σ circles (dashed)", fontsize=11)
    return fig
