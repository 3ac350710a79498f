"""Figure 1: training curves (paper Fig. 1) from RUN_DIR/metrics.csv."""
import numpy as np
from matplotlib.ticker import FuncFormatter, NullFormatter

from .images import new_figure
from .run import recon_name

TRAIN_COLOR, TEST_COLOR = "#1f77b4", "#d62728"
HEALTHY_RATIO = (10, 50)  # paper section 4.4: "values 10-50 suggest healthy training"


def _ratio(recon, kl):
    recon, kl = np.asarray(recon, float), np.asarray(kl, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(kl > 0, recon / kl, np.inf)


def training_curves_figure(run, rng=None):
    rows = run.metrics
    epochs = np.array([r["epoch"] for r in rows])
    column = lambda name: np.array([r[name] for r in rows], dtype=float)  # noqa: E731
    series = {
        "recon": (column("train_recon"), column("test_recon")),
        "kl": (column("train_kl"), column("test_kl")),
        "ratio": (_ratio(column("train_recon"), column("train_kl")),
                  _ratio(column("test_recon"), column("test_kl"))),
    }
    warmup = int(run.config.get("warmup_epochs", 0) or 0)
    beta = float(run.config.get("beta", 1.0))
    marker = "o" if len(epochs) <= 40 else None

    fig = new_figure(13, 4.6)
    axes = fig.subplots(1, 3)
    panels = (("recon", "Reconstruction loss", f"{recon_name(run.config)} per image (nats)"),
              ("kl", "KL divergence (before $\\beta$ weighting)", "KL per image (nats)"),
              ("ratio", "Reconstruction / KL ratio", "recon / KL (log scale)"))
    for ax, (key, title, ylabel) in zip(axes, panels):
        train, test = series[key]
        ax.plot(epochs, train, color=TRAIN_COLOR, marker=marker, ms=3, lw=1.6, label="train")
        ax.plot(epochs, test, color=TEST_COLOR, marker=marker, ms=3, lw=1.6, ls="--", label="test")
        if warmup > 0:
            ax.axvspan(0.5, min(warmup, epochs.max()) + 0.5, color="#ffd27f", alpha=0.35, lw=0,
                       label=f"KL warm-up (epochs 1-{warmup})")
        ax.set_title(title, fontsize=11)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_xlim(0.5, epochs.max() + 0.5)
        ax.grid(alpha=0.3)
        if len(epochs) <= 12:
            ax.set_xticks(epochs)
        else:
            ax.xaxis.get_major_locator().set_params(integer=True)
    ratio_ax = axes[2]
    finite = np.concatenate([v[np.isfinite(v) & (v > 0)] for v in series["ratio"]])
    if finite.size:
        ratio_ax.set_yscale("log")
        ratio_ax.axhspan(*HEALTHY_RATIO, color="#2ca02c", alpha=0.12, lw=0, label="paper's healthy range 10-50")
        low, high = min(finite.min(), HEALTHY_RATIO[0]), max(finite.max(), HEALTHY_RATIO[1])
        ratio_ax.set_ylim(low / 1.5, high * 1.5)
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        ratio_ax.yaxis.set_major_formatter(plain)
        # within two decades, label the 2s and 5s too; beyond, decades only
        few = np.log10(high * 1.5) - np.log10(low / 1.5) < 2
        ratio_ax.yaxis.set_minor_formatter(
            FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else "") if few else NullFormatter())
    handles, labels = ratio_ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(handles), fontsize=9, frameon=False)
    schedule = run.config.get("schedule", "epoch")
    fig.suptitle(f"{run.kind.upper()} training on {run.dataset_label}: {len(epochs)} epoch(s), "
                 f"latent {run.latent_dim}, final $\\beta$ = {beta:g}"
                 + (f", {schedule} schedule" if warmup else ""), fontsize=12)
    return fig
