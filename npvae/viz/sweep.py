"""The sweep's trade-off figure: reconstruction against KL, and log-likelihood against latent size."""
from ..files import atomic_write

MARKERS = "osD^vP*Xh<>"


def plot_sweep(records, path, iwae_k=None):
    """The two-panel trade-off figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    betas = sorted({r["beta"] for r in records})
    latents = sorted({r["latent_dim"] for r in records})
    cmap = colormaps["viridis"]
    color = {b: cmap(i / max(1, len(betas) - 1) * 0.9) for i, b in enumerate(betas)}
    marker = {d: MARKERS[i % len(MARKERS)] for i, d in enumerate(latents)}

    fig = Figure(figsize=(12, 4.8), dpi=120)
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    for r in records:
        left.scatter(r["test_kl"], r["test_recon"], color=color[r["beta"]], marker=marker[r["latent_dim"]],
                     s=60, edgecolor="black", linewidth=0.5, zorder=3)
    left.set_xlabel("test KL per image (nats)")
    left.set_ylabel("test reconstruction -log p(x|z) per image (nats)")
    left.set_title("Rate-distortion trade-off")
    left.grid(alpha=0.3)
    handles = [Line2D([], [], color=color[b], marker="o", ls="", label=f"beta {b:g}") for b in betas]
    handles += [Line2D([], [], color="grey", marker=marker[d], ls="", label=f"latent {d}") for d in latents]
    left.legend(handles=handles, fontsize=8, ncol=2)

    for b in betas:
        rows = sorted((r for r in records if r["beta"] == b), key=lambda r: r["latent_dim"])
        right.errorbar([r["latent_dim"] for r in rows], [r["test_log_px"] for r in rows],
                       yerr=[r["test_log_px_se"] for r in rows], color=color[b], marker="o", capsize=3,
                       label=f"beta {b:g}")
    right.set_xscale("log", base=2)
    right.set_xticks(latents)
    right.set_xticklabels([str(d) for d in latents])
    right.set_xlabel("latent size")
    right.set_ylabel(f"test log p(x) per image, IWAE-{iwae_k} (nats)" if iwae_k else "test log p(x)")
    images = records[0]["iwae_images"] if records else 0
    right.set_title(f"Test log-likelihood (first {images} test images)")
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"), "wb", suffix=".png")
    return path


