"""A sweep's results, one row per configuration: mean and standard deviation over its seeds.

For each configuration (a grid point without its seed) and each final figure -- train and
test reconstruction, KL and -ELBO, and the IWAE test log-likelihood where it was estimated --
the mean over the seeds whose run finished and the sample standard deviation (n - 1; none
with a single seed). Failed runs are counted, not averaged.
"""
import math

import numpy as np

from ..files import csv_text, text_table
from .grid import CONFIGURATION_AXES, configuration_name

METRICS = ("train_recon", "train_kl", "train_neg_elbo", "test_recon", "test_kl", "test_neg_elbo",
           "test_log_px")
HEADINGS = {"train_recon": "train recon", "train_kl": "train KL", "train_neg_elbo": "train -ELBO",
            "test_recon": "test recon", "test_kl": "test KL", "test_neg_elbo": "test -ELBO",
            "test_log_px": "test log p(x)"}
AXIS_HEADINGS = {"model": "model", "dataset": "data", "likelihood": "decoder",
                 "warmup_epochs": "warm-up", "beta": "beta", "latent_dim": "latent"}
SUMMARY_COLUMNS = ("configuration", *CONFIGURATION_AXES, "seeds", "failed",
                   *[f"{m}_{s}" for m in METRICS for s in ("mean", "sd")], "iwae_k", "iwae_images")


def mean_sd(values):
    """(mean, sample sd) of a list of numbers; sd is NaN for fewer than two, both NaN for none."""
    values = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if values.size == 0:
        return math.nan, math.nan
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else math.nan


def aggregate(records):
    """Per-run records (dicts with the AXES, ``status`` and the METRICS) -> one summary row per
    configuration, in the order configurations first appear."""
    groups = {}
    for record in records:
        groups.setdefault(configuration_name(record), []).append(record)
    rows = []
    for name, group in groups.items():
        finished = [r for r in group if r.get("status") == "finished"]
        row = {"configuration": name, **{axis: group[0][axis] for axis in CONFIGURATION_AXES},
               "seeds": len(finished), "failed": sum(r.get("status") == "failed" for r in group)}
        for metric in METRICS:
            row[f"{metric}_mean"], row[f"{metric}_sd"] = mean_sd([r.get(metric) for r in finished])
        evaluated = [r for r in finished if r.get("iwae_k") is not None]
        row["iwae_k"] = evaluated[0]["iwae_k"] if evaluated else None
        row["iwae_images"] = evaluated[0]["iwae_images"] if evaluated else None
        rows.append(row)
    return rows


def summary_csv(rows):
    return csv_text(rows, SUMMARY_COLUMNS)


def varying_axes(rows):
    """The configuration axes that take more than one value (beta and latent size always)."""
    return [axis for axis in CONFIGURATION_AXES
            if axis in ("beta", "latent_dim") or len({row[axis] for row in rows}) > 1]


def _cell(mean, sd):
    if not math.isfinite(mean):
        return "-"
    return f"{mean:.2f}" if not math.isfinite(sd) else f"{mean:.2f} ± {sd:.2f}"


def _table_cells(rows):
    axes = varying_axes(rows)
    metrics = [m for m in METRICS if any(math.isfinite(r[f"{m}_mean"]) for r in rows)]
    header = [AXIS_HEADINGS[a] for a in axes] + ["seeds"] + [HEADINGS[m] for m in metrics]
    body = []
    for row in rows:
        seeds = f"{row['seeds']}" + (f" ({row['failed']} failed)" if row["failed"] else "")
        body.append([f"{row[a]:g}" if a == "beta" else str(row[a]) for a in axes] + [seeds]
                    + [_cell(row[f"{m}_mean"], row[f"{m}_sd"]) for m in metrics])
    return header, body


def summary_text(rows):
    """A plain-text table (npvae.files.text_table): mean ± sd over seeds, in nats per image."""
    header, body = _table_cells(rows)
    return text_table(header, body)


def summary_markdown(rows):
    """The same table in Markdown, for a README."""
    header, body = _table_cells(rows)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)

