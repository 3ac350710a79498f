"""A sweep's two figures, from its summary rows (npvae.experiments.aggregate: mean and sd over
seeds per configuration):

* rate-distortion: test KL (the rate) against test reconstruction (the distortion), one
  point per configuration, error bars of one standard deviation over seeds on both axes;
* log-likelihood against latent size: the IWAE test log p(x) (or, where none was estimated,
  the test ELBO, its lower bound), one line per beta, error bars over seeds.

When the sweep also varies the model, data set, decoder or warm-up, each combination of
those gets its own panel.
"""
import math

from ..files import atomic_write

MARKERS = "osD^vP*Xh<>"
GROUP_AXES = ("model", "dataset", "likelihood", "warmup_epochs")


def _groups(rows):
    """{panel title: rows}, one panel per combination of the non-(beta, latent) axes."""
    varying = [a for a in GROUP_AXES if len({r[a] for r in rows}) > 1]
    groups = {}
    for row in rows:
        title = ", ".join(f"warm-up {row[a]}" if a == "warmup_epochs" else str(row[a]) for a in varying)
        groups.setdefault(title, []).append(row)
    return groups


def _sd(value):
    return value if value is not None and math.isfinite(value) else 0.0


def _figure(panels):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4 * panels, 4.8), dpi=120)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    return fig, axes


def _styles(rows):
    from matplotlib import colormaps

    betas = sorted({r["beta"] for r in rows})
    latents = sorted({r["latent_dim"] for r in rows})
    cmap = colormaps["viridis"]
    color = {b: cmap(i / max(1, len(betas) - 1) * 0.9) for i, b in enumerate(betas)}
    marker = {d: MARKERS[i % len(MARKERS)] for i, d in enumerate(latents)}
    return betas, latents, color, marker


def _save(fig, path):
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"), "wb", suffix=".png")
    return path


def _seeds_note(rows):
    seeds = sorted({r["seeds"] for r in rows})
    counts = "/".join(str(s) for s in seeds)
    return f"mean ± sd over {counts} seed{'s' if seeds != [1] else ''}"


def plot_rate_distortion(rows, path):
    """Test KL against test reconstruction per configuration, error bars over seeds -> ``path``."""
    from matplotlib.lines import Line2D

    rows = [r for r in rows if r["seeds"] > 0]
    betas, latents, color, marker = _styles(rows)
    groups = _groups(rows)
    fig, axes = _figure(len(groups))
    for ax, (title, group) in zip(axes, groups.items()):
        for r in group:
            ax.errorbar(r["test_kl_mean"], r["test_recon_mean"], xerr=_sd(r["test_kl_sd"]),
                        yerr=_sd(r["test_recon_sd"]), color=color[r["beta"]], marker=marker[r["latent_dim"]],
                        ms=7, mec="black", mew=0.5, capsize=3, elinewidth=1, zorder=3)
        ax.set_xlabel("test KL per image: rate (nats)")
        ax.set_ylabel("test reconstruction -log p(x|z) per image: distortion (nats)")
        ax.set_title(f"Rate-distortion{': ' + title if title else ''} ({_seeds_note(group)})", fontsize=10)
        ax.grid(alpha=0.3)
    handles = [Line2D([], [], color=color[b], marker="o", ls="", label=f"beta {b:g}") for b in betas]
    handles += [Line2D([], [], color="grey", marker=marker[d], ls="", label=f"latent {d}") for d in latents]
    axes[0].legend(handles=handles, fontsize=8, ncol=2)
    return _save(fig, path)


def plot_log_likelihood(rows, path):
    """Test log p(x) (IWAE where estimated, else the ELBO) against latent size, one line per
    beta, error bars over seeds -> ``path``."""
    rows = [r for r in rows if r["seeds"] > 0]
    betas, latents, color, _ = _styles(rows)
    iwae = all(math.isfinite(r["test_log_px_mean"]) for r in rows)
    groups = _groups(rows)
    fig, axes = _figure(len(groups))
    for ax, (title, group) in zip(axes, groups.items()):
        for b in betas:
            line = sorted((r for r in group if r["beta"] == b), key=lambda r: r["latent_dim"])
            if iwae:
                values = [r["test_log_px_mean"] for r in line]
                errors = [_sd(r["test_log_px_sd"]) for r in line]
            else:
                values = [-r["test_neg_elbo_mean"] for r in line]
                errors = [_sd(r["test_neg_elbo_sd"]) for r in line]
            ax.errorbar([r["latent_dim"] for r in line], values, yerr=errors, color=color[b], marker="o",
                        capsize=3, label=f"beta {b:g}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(latents)
        ax.set_xticklabels([str(d) for d in latents])
        ax.set_xlabel("latent size")
        if iwae:
            k, images = group[0]["iwae_k"], group[0]["iwae_images"]
            ax.set_ylabel(f"test log p(x) per image, IWAE-{k} on {images} images (nats)")
        else:
            ax.set_ylabel("test ELBO per image (a lower bound on log p(x); nats)")
        ax.set_title(f"Test log-likelihood{': ' + title if title else ''} ({_seeds_note(group)})",
                     fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)
