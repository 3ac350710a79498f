"""``write_report(run_dir)``: RUN_DIR/report.html, one self-contained page for a trained run.

The page holds the configuration, the final epoch's metrics (beside the paper's Table 4 when
the run is the paper's setting), the latent-quality metrics when `npvae evaluate --metrics` has
filed them in evaluation.json, every figure embedded as a base64 PNG with a one-line
caption saying what to look for, and the per-epoch metrics. It loads nothing from anywhere:
it opens from disk in a browser with no server and no network. Figures missing from
RUN_DIR/figures/, or older than the model or metrics, are drawn first.
"""
import base64
import datetime
import html
import os

from ..data import class_names
from ..data.datasets import item_noun
from ..evaluation import metrics_rows
from ..runs import PAPER_IMPROVEMENT, PAPER_TABLE4, RunDirectory, is_paper_setting
from .figures import DEFAULT_CLASS, caption, expected_figures, make_all_figures
from .run import recon_name

def _e(value):
    return html.escape(str(value), quote=True)


def _number(value, digits=2):
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        return f"{value:,.{digits}f}"
    return str(value)


def _table(header, rows, cls=""):
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{_e(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _ratio(recon, kl):
    return recon / kl if kl > 0 else float("inf")


def _metrics_table(rows, recon="BCE"):
    last = rows[-1]
    mean_seconds = sum(r["seconds"] for r in rows) / len(rows)
    seconds = f"{_number(last['seconds'], 1)} (mean {_number(mean_seconds, 1)})"
    table_rows = [
        ["train", _number(last["train_recon"]), _number(last["train_kl"]), _number(last["train_total"]),
         _number(_ratio(last["train_recon"], last["train_kl"]), 1), seconds],
        ["test", _number(last["test_recon"]), _number(last["test_kl"]), _number(last["test_total"]),
         _number(_ratio(last["test_recon"], last["test_kl"]), 1), ""],
    ]
    header = ["", f"recon ({recon})", "KL", "total", "recon / KL", "seconds per epoch"]
    return _table(header, table_rows, "metrics")


def _paper_table(kind, last):
    rows = [[name.upper(), *[_number(v) for v in values]] for name, values in PAPER_TABLE4.items()]
    rows.append(["Improvement", *PAPER_IMPROVEMENT])
    rows.append([f"this run ({kind.upper()}, train)", _number(last["train_recon"]),
                 _number(last["train_kl"]), _number(last["train_total"])])
    table = _table(["Model", "Recon. Loss", "KL Divergence", "Total Loss"], rows, "paper")
    # highlight the paper's row for this model kind
    mark = f"<tr><td>{kind.upper()}</td>"
    return table.replace(mark, f'<tr class="same"><td>{kind.upper()}</td>', 1)


def _latent_quality(run):
    """The latent-quality table of evaluation.json's ``metrics`` (whole test set) or, failing
    that, of a ``metrics_first<N>``; None when `npvae evaluate --metrics` has not run."""
    evaluation = run.read_evaluation()
    keys = ["metrics"] if "metrics" in evaluation else sorted(k for k in evaluation if k.startswith("metrics_first"))
    if not keys:
        return None
    result = evaluation[keys[0]]
    notes = "".join(f'<p class="note">{_e(note)}</p>' for note in result.get("notes", []))
    variances = ", ".join(f"{v:.3g}" for v in result["test"]["variances"])
    return (f"<h2>Latent quality</h2><p>From <code>npvae evaluate --metrics</code> "
            f"(evaluation.json, <code>{_e(keys[0])}</code>): posterior means of "
            f"{result['train']['images']:,} training and {result['test']['images']:,} test images.</p>"
            + _table(["metric", "train", "test"], metrics_rows(result), "metrics")
            + f'<p class="note">Var<sub>x</sub> &mu;<sub>u</sub> per latent dimension (test): {_e(variances)}. '
            "Active units: Burda et al. (2016); MIG: Chen et al. (2018), 20-bin histogram estimator; "
            "the probe is a multinomial logistic regression on the standardised means.</p>" + notes)


def _figures_current(run, kind, seed):
    """Every expected figure exists, is newer than the model and metrics, and (when a seed
    is asked for) was drawn with that seed."""
    paths = [run.figure_path(spec.filename) for spec in expected_figures(kind)]
    if not all(os.path.exists(p) for p in paths):
        return False
    sources = [run.file(name) for name in (run.MODEL, run.CHECKPOINT, run.METRICS)]
    newest_source = max(os.path.getmtime(p) for p in sources if os.path.exists(p))
    if min(os.path.getmtime(p) for p in paths) < newest_source:
        return False
    return seed is None or run.read_manifest().get("seed") == seed


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } .sub { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
table.config td:last-child { text-align: left; font-family: ui-monospace, monospace; }
tr.same td { background: #fff3cd; font-weight: 600; }
.side { display: flex; flex-wrap: wrap; gap: 2.5em; align-items: flex-start; }
.side h3 { margin: 0.2em 0; font-size: 1em; }
figure { margin: 2em 0; padding-top: 0.5em; border-top: 1px solid #e4e4e4; }
figure img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
figcaption { margin-top: 0.4em; color: #333; } .note { color: #666; font-size: 0.9em; }
details { margin: 1em 0; } summary { cursor: pointer; }
"""


def write_report(run_dir, seed=None, dataset_root=None, cvae_class=None, log=None):
    """Write RUN_DIR/report.html and return its path.

    Figures are drawn first (``make_all_figures``) when any is missing or older than the
    model or metrics, or when ``seed`` / ``cvae_class`` differ from those they were drawn
    with (None: keep what is there; 0 and the default class when drawing anew).
    """
    run = RunDirectory(run_dir)
    config = run.read_config_dict()
    rows = run.read_metrics(required=True)
    model = run.load_model(expect_kind=config["model"])  # a clear error if missing or corrupt
    kind = model.kind
    manifest = run.read_manifest()
    stale = (not _figures_current(run, kind, seed)
             or (cvae_class is not None and kind == "cvae" and manifest.get("cvae_class") != cvae_class))
    if stale:
        if log:
            log("npvae report: drawing the figures first")
        make_all_figures(run_dir, seed=0 if seed is None else seed, dataset_root=dataset_root,
                         cvae_class=DEFAULT_CLASS if cvae_class is None else cvae_class, log=log)
        manifest = run.read_manifest()
    names = class_names(config.get("dataset", "mnist"))
    chosen = manifest.get("cvae_class", DEFAULT_CLASS)

    last = rows[-1]
    title = f"{kind.upper()} on {config.get('dataset', 'mnist')}: {os.path.basename(os.path.abspath(run_dir))}"
    finished = f"{last['epoch']} of {config.get('epochs', '?')} epochs"
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{_e(title)}</h1>",
             f'<p class="sub">Run directory <code>{_e(os.path.abspath(run_dir))}</code>; {_e(finished)}; '
             f"model from <code>{_e(manifest.get('model_file', 'model.npz'))}</code> "
             f"({model.num_parameters():,} parameters, latent dimension {model.latent_dim}); "
             f"figures drawn with seed {_e(manifest.get('seed', '?'))}; "
             f"report written {_e(datetime.datetime.now().strftime('%Y-%m-%d %H:%M'))}.</p>"]

    parts.append("<h2>Configuration</h2>")
    parts.append(_table(["setting", "value"], [[k, "(all)" if v is None else v] for k, v in config.items()],
                        "config"))

    parts.append("<h2>Final metrics</h2>")
    metrics_block = f"<div><h3>This run, epoch {_e(last['epoch'])} (beta {_e(_number(last['beta'], 3))})</h3>" \
                    f"{_metrics_table(rows, recon_name(config))}</div>"
    if is_paper_setting(config):
        paper_block = (f"<div><h3>The paper's Table 4 (final training metrics)</h3>{_paper_table(kind, last)}"
                       + ("" if last["epoch"] >= config["epochs"] else
                          f'<p class="note">This run has finished {_e(finished)}: not yet comparable.</p>')
                       + "</div>")
        parts.append(f'<div class="side">{metrics_block}{paper_block}</div>')
    else:
        parts.append(metrics_block)
        parts.append('<p class="note">The paper\'s Table 4 is shown for runs in its setting only '
                     "(MNIST, latent 2, batch 128, lr 1e-3, 30 epochs, warm-up 10, beta 1, "
                     "full training set).</p>")
    recon_note = ("the BCE summed over 784 pixels" if recon_name(config) == "BCE"
                  else "the Gaussian negative log-density summed over 784 pixels")
    parts.append(f'<p class="note">Per image, in nats: recon is {recon_note}, KL the '
                 "divergence summed over latent dimensions before beta weighting. Train figures are "
                 "averaged over the epoch's batches, with total = recon + beta x KL at that epoch's beta; "
                 "test figures are at the end of the epoch, with total = recon + KL (beta = 1).</p>")

    quality = _latent_quality(run)
    if quality:
        parts.append(quality)

    parts.append("<h2>Figures</h2>")
    for spec in expected_figures(kind):
        path = run.figure_path(spec.filename)
        with open(path, "rb") as f:
            data = base64.b64encode(f.read()).decode("ascii")
        line = caption(spec, kind, chosen, names, item_noun(config.get("dataset", "mnist")))
        parts.append(f'<figure id="fig{spec.number}"><img src="data:image/png;base64,{data}" '
                     f'alt="{_e(spec.title)}"><figcaption><b>Figure {spec.number}. {_e(spec.title)}.</b> '
                     f"{_e(line)} <span class=\"note\">({_e(spec.filename)})</span></figcaption></figure>")

    header = ["epoch", "beta", "train recon", "train KL", "train total", "train ratio",
              "test recon", "test KL", "test total", "seconds", "images/s"]
    table_rows = [[r["epoch"], _number(r["beta"], 3), _number(r["train_recon"]), _number(r["train_kl"]),
                   _number(r["train_total"]), _number(_ratio(r["train_recon"], r["train_kl"]), 1),
                   _number(r["test_recon"]), _number(r["test_kl"]), _number(r["test_total"]),
                   _number(r["seconds"], 1), _number(r["images_per_s"], 0)] for r in rows]
    parts.append(f"<details><summary>Metrics of every epoch ({len(rows)})</summary>"
                 f"{_table(header, table_rows, 'metrics')}</details>")
    parts.append("</body></html>\n")

    path = run.write_report("\n".join(parts))
    if log:
        log(f"npvae report: wrote {path}")
    return path
