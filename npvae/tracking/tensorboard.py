"""TensorBoard event files for a training run, written with tensorboardX (NumPy + protobuf, no
torch or TensorFlow; the optional extra ``pip install -e ".[tracking]"``).

What a run's log holds (step = epoch):

    train/recon, train/kl, train/neg_elbo, train/loss, train/recon_kl_ratio
    test/recon, test/kl, test/neg_elbo, test/recon_kl_ratio
    beta, time/seconds, time/images_per_s
    images/reconstructions   a fixed set of test images (one per class) above their
                             reconstructions (decoded posterior means), every few epochs
    images/prior_samples     a fixed set of z ~ N(0, I) decoded (a CVAE: labels 0..9 per row)
    hparams                  the configuration, with the final metrics (sub-run "hparams")

neg_elbo is the -ELBO of eq. 30 with beta = 1 (recon + KL); train/loss is what training
minimised, recon + beta x KL at that epoch's beta (metrics.csv's train_total). KL is before
the beta weighting, as everywhere in npvae.

:class:`TensorBoardLogger` follows a training run through the hooks of
``npvae.training.Callback`` (on_start, on_epoch, on_end; it does not subclass it, since
tracking sits below training); :func:`export_run` writes the same log from a finished run's
metrics.csv and model. Event files are append-only streams that TensorBoard reads while they
grow, so they are flushed after every epoch rather than written atomically.
"""
import math
import os
from dataclasses import fields

import numpy as np

from ..data.mosaic import mosaic
from ..data import class_names, load_dataset, to_float
from ..runs import RunDirectory

INSTALL_HINT = 'TensorBoard logging needs tensorboardX: pip install -e ".[tracking]"'
DIRECTORY = "tensorboard"      # default log directory, inside the run directory
IMAGE_EVERY = 5                # epochs between image grids (also the first and the last epoch)
SAMPLE_ROWS, SAMPLE_COLUMNS = 8, 10
HPARAMS_RUN = "hparams"        # the sub-run that holds the configuration and final metrics


def require_tensorboardx():
    """tensorboardX's SummaryWriter class; RuntimeError (one line: how to install it) when
    tensorboardX is missing. Imported here, when asked for, so npvae runs without it."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise RuntimeError(INSTALL_HINT) from None
    return SummaryWriter


def default_logdir(run_dir):
    """RUN_DIR/tensorboard/."""
    return RunDirectory(run_dir).file(DIRECTORY)


def _ratio(recon, kl):
    return recon / kl if kl > 0 else math.inf


def epoch_scalars(row):
    """tag -> value for one row of metrics.csv (npvae.runs.METRIC_COLUMNS)."""
    return {
        "train/recon": row["train_recon"], "train/kl": row["train_kl"],
        "train/neg_elbo": row["train_recon"] + row["train_kl"], "train/loss": row["train_total"],
        "train/recon_kl_ratio": row["train_ratio"],
        "test/recon": row["test_recon"], "test/kl": row["test_kl"],
        "test/neg_elbo": row["test_recon"] + row["test_kl"],
        "test/recon_kl_ratio": _ratio(row["test_recon"], row["test_kl"]),
        "beta": row["beta"], "time/seconds": row["seconds"], "time/images_per_s": row["images_per_s"],
    }


def image_grid(images, ncols):
    """(N, H, W) images in [0, 1], N a multiple of ``ncols`` -> one uint8 picture of them in
    ``ncols`` columns, dark-on-light like the report's figures (npvae.data.mosaic)."""
    images = np.asarray(images, dtype=np.float32)
    grid, _ = mosaic(images, len(images) // ncols, ncols)
    return np.round(255 * (1 - np.clip(grid, 0, 1))).astype(np.uint8)


def fixed_test_images(labels, classes):
    """Indices of the first image of each of ``classes`` classes (fewer where one is absent)."""
    return np.array([np.flatnonzero(labels == k)[0] for k in range(classes) if np.any(labels == k)])


def config_hparams(config):
    """A TrainConfig as hparams (bool, str, int or float each). The settings that may be None
    (no --limit: every image) are strings in every run, "all" or the number, so that each
    column of TensorBoard's HPARAMS table holds one type across runs."""
    optional = {f.name for f in fields(config) if f.default is None}
    return {name: (("all" if value is None else str(value)) if name in optional else value)
            for name, value in config.to_dict().items()}


class TensorBoardLogger:
    """``TensorBoardLogger(logdir=None, data_root=None, image_every=IMAGE_EVERY)``: follows a
    run (the Callback hooks) into TensorBoard event files in ``logdir`` (None: RUN_DIR/tensorboard/).

    The reconstruction grid uses the first test image of each class, and the prior samples a
    fixed z drawn once from a seeded stream, so the pictures of different epochs compare like
    for like. Raises RuntimeError at construction when tensorboardX is not installed, before
    any training starts.
    """

    def __init__(self, logdir=None, data_root=None, image_every=IMAGE_EVERY):
        require_tensorboardx()
        self.logdir = None if logdir is None else os.fspath(logdir)
        self.data_root = data_root
        self.image_every = image_every
        self.writer = None
        self.last_image_epoch = None

    # -- the Callback hooks --------------------------------------------------------------
    def on_start(self, run, config, model):
        """Open the writer; pick the fixed test images and prior draws."""
        self.config = config
        if self.logdir is None:
            self.logdir = run.file(DIRECTORY)
        images, labels = load_dataset(config.dataset, "test", root=self.data_root)
        pick = fixed_test_images(labels, len(class_names(config.dataset)))
        self.images, self.labels = images[pick], labels[pick].astype(np.int64)
        rng = np.random.default_rng([config.seed, 7])  # its own stream: training's are untouched
        self.prior_z = rng.standard_normal((SAMPLE_ROWS * SAMPLE_COLUMNS, model.latent_dim)).astype(model.dtype)
        self.writer = require_tensorboardx()(logdir=self.logdir, flush_secs=10)

    def on_epoch(self, row, model):
        """Scalars of the epoch; image grids on the first epoch and every ``image_every``."""
        self.write_scalars(row)
        epoch = row["epoch"]
        if self.image_every and (epoch == 1 or epoch % self.image_every == 0):
            self.write_images(model, epoch)
        self.writer.flush()

    def on_end(self, rows, model):
        """Images of the final model (unless just written) and the hparams; close."""
        last = rows[-1]
        if self.last_image_epoch != last["epoch"]:
            self.write_images(model, last["epoch"])
        self.write_hparams(last)
        self.writer.close()

    # -- what is written ------------------------------------------------------------------
    def write_scalars(self, row):
        for tag, value in epoch_scalars(row).items():
            self.writer.add_scalar(tag, float(value), int(row["epoch"]))

    def write_images(self, model, epoch):
        """The reconstruction and prior-sample grids of ``model`` at step ``epoch``."""
        conditional = model.kind == "cvae"
        labels = self.labels if conditional else None
        recon = model.reconstruct(to_float(self.images, model.dtype), labels)[:, 0]
        pairs = np.concatenate([self.images / 255.0, recon])
        self.writer.add_image("images/reconstructions", image_grid(pairs, len(self.images)), epoch,
                              dataformats="HW")
        sample_labels = None
        if conditional:
            sample_labels = np.arange(len(self.prior_z)) // SAMPLE_COLUMNS % model.num_classes
        samples = model.decode(self.prior_z, sample_labels)[:, 0]
        self.writer.add_image("images/prior_samples", image_grid(samples, SAMPLE_COLUMNS), epoch,
                              dataformats="HW")
        self.last_image_epoch = epoch

    def write_hparams(self, last):
        """The configuration with the final epoch's metrics, for TensorBoard's HPARAMS tab."""
        hparams = config_hparams(self.config)
        final = epoch_scalars(last)
        metrics = {f"hparam/{tag.replace('/', '_')}": float(final[tag])
                   for tag in ("train/neg_elbo", "test/recon", "test/kl", "test/neg_elbo")}
        metrics["hparam/epochs_done"] = float(last["epoch"])
        self.writer.add_hparams(hparams, metrics, name=HPARAMS_RUN, global_step=int(last["epoch"]))


def _event_files(logdir):
    return [name for name in os.listdir(logdir) if name.startswith("events.out.tfevents")] \
        if os.path.isdir(logdir) else []


def export_run(run_dir, logdir=None, data_root=None, log=None):
    """`npvae export RUN_DIR --tensorboard [DIR]`: write a finished (or stopped) run's log from
    its metrics.csv and model: every epoch's scalars, the image grids of the model it has
    (model.npz, else the last checkpoint) at its last epoch, and the hparams. Returns the log
    directory. Refuses a directory that already holds event files, which TensorBoard would
    show twice."""
    require_tensorboardx()
    run = RunDirectory(run_dir)
    config = run.read_config()
    rows = run.read_metrics(required=True)
    model = run.load_model(expect_kind=config.model)
    logdir = os.fspath(logdir) if logdir is not None else default_logdir(run_dir)
    if _event_files(logdir):
        raise FileExistsError(f"{logdir} already holds TensorBoard event files; remove them or "
                              f"give another directory")
    logger = TensorBoardLogger(logdir, data_root=data_root, image_every=0)
    logger.on_start(run, config, model)
    for row in rows:
        logger.write_scalars(row)
    logger.on_end(rows, model)
    if log:
        log(f"npvae export: {len(rows)} epoch(s) of {run_dir} written to {logdir}; "
            f"view with: tensorboard --logdir {logdir}")
    return logdir
