"""Training a VAE or CVAE: the loss of eq. 30 with KL annealing (eq. 31), Adam, run directories.

Loss convention: per image, BCE summed over the 784 pixels plus beta times the KL summed
over latent dimensions, in nats; averaged over the images of a batch for the gradient,
and over all images of the epoch for the reported figures. With ``likelihood="gaussian"``
the Gaussian negative log-density of the pixels (npvae.losses.gaussian) takes the BCE's place.

Everything a run writes goes through its npvae.runs.RunDirectory, atomically, after every
epoch, so a run killed at any moment resumes (``resume=True``) from its last finished
epoch and ends with exactly the metrics of an uninterrupted run.
"""
import math
import time
from dataclasses import replace

import numpy as np
from tqdm import tqdm

from ..data import count_classes, dataset_source, load_dataset, minibatches, to_float
from ..evaluation import evaluate_elbo
from ..models import build_model
from ..optim import Adam, kl_weight
from ..runs import RESUMABLE, RunDirectory, TrainConfig, config_differences
from ..runtime import DataParallel, default_workers
from ..runtime.blas import blas_info, describe_blas


class Callback:
    """Something that follows a training run (a tracker, a logger): override what you need.
    Callbacks only read: they must not change the model or the rows."""

    def on_start(self, run, config, model):
        """Before the first epoch of this session (``run`` is the RunDirectory)."""

    def on_epoch(self, row, model):
        """After each finished epoch, once its checkpoint is written; ``row`` as in metrics.csv."""

    def on_end(self, rows, model):
        """After the last epoch, once model.npz is written."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def _generators(seed):
    """Independent streams for initialisation, shuffling and the training eps."""
    init, shuffle, noise = np.random.SeedSequence(seed).spawn(3)
    return np.random.default_rng(init), np.random.default_rng(shuffle), np.random.default_rng(noise)


def initial_model(config):
    """The model a run of ``config`` (a TrainConfig) starts from: the same initialisation
    stream as :func:`train`, so this is the real epoch-0 model of the run."""
    init_rng, _, _ = _generators(config.seed)
    return build_model(config.model_config(), rng=init_rng)


def _evaluation_rng(seed, epoch):
    """A fresh stream per epoch, so test figures do not depend on where a run resumed."""
    return np.random.default_rng([seed, epoch, 1])


def train_step(model, optimizer, x, labels, eps, beta):
    """One optimisation step on a batch: forward, loss (eq. 30), backward, Adam.

    ``model`` is a VAE/CVAE or a :class:`~npvae.runtime.DataParallel` around one (which runs
    forward, loss and backward of each shard on its own core).

    Returns (recon, kl) batch means. Raises TrainingDiverged, before touching the
    parameters, when the loss is not finite.
    """
    optimizer.zero_grad()
    recon_per_image, kl_per_image = model.loss_and_backward(x, eps, labels, beta)
    recon, kl = float(recon_per_image.mean()), float(kl_per_image.mean())
    if not math.isfinite(recon + beta * kl):
        raise TrainingDiverged(f"the loss is not finite (reconstruction {recon}, KL {kl})")
    optimizer.step()
    return recon, kl


def train_epoch(model, optimizer, images, labels, batch_size, beta_for_step, shuffle_rng, noise_rng,
                progress=None, epoch=None, parallel=None):
    """One pass over the data. Returns per-image mean (recon, kl) and the batches' last beta.

    ``parallel``, a :class:`~npvae.runtime.DataParallel` around ``model``, runs the steps.
    """
    recon_sum = kl_sum = 0.0
    seen = 0
    for batch, index in enumerate(minibatches(len(images), batch_size, shuffle_rng)):
        beta = beta_for_step(batch)
        x = to_float(images[index])
        eps = noise_rng.standard_normal((len(index), model.latent_dim), dtype=np.float32)
        try:
            recon, kl = train_step(parallel or model, optimizer, x, labels[index], eps, beta)
        except TrainingDiverged as error:
            raise TrainingDiverged(f"epoch {epoch}, batch {batch + 1}: {error}") from None
        recon_sum += recon * len(index)
        kl_sum += kl * len(index)
        seen += len(index)
        if progress is not None:
            progress.update(len(index))
            progress.set_postfix(loss=f"{(recon_sum + beta * kl_sum) / seen:.2f}", beta=f"{beta:.2f}")
    return recon_sum / seen, kl_sum / seen, beta


def train(config, out_dir, resume=False, data_root=None, progress=True, log=print, callbacks=()):
    """Train per ``config`` (a TrainConfig) into the run directory ``out_dir``; returns the
    list of metric rows.

    With ``resume``, continue the run saved there: ``config`` None continues it as saved;
    otherwise it must agree with the saved
    configuration except in ``epochs`` (a larger count extends a run: the epochs already done
    stay as they are and, since the KL schedule depends only on the epoch number, the run ends
    exactly as one started with that count) and ``workers`` (None keeps the saved count).
    Any other difference is an error that names each setting. ``callbacks`` (Callback
    objects) are told of the start, each epoch and the end.
    """
    run = RunDirectory(out_dir)
    if resume:
        if not run.exists() or not run.has_checkpoint():
            raise FileNotFoundError(f"{out_dir}: nothing to resume (needs config.json and checkpoint.npz)")
        config = resumed_config(run.read_config(), config)
    elif run.has_checkpoint():
        raise FileExistsError(f"{out_dir} already holds a run; pass --resume to continue it "
                              f"or choose another --out")
    config.validate()
    if config.workers is None:      # record the count: it fixes the run's rounding
        config = replace(config, workers=default_workers())

    train_images, train_labels = load_dataset(config.dataset, "train", root=data_root)
    test_images, test_labels = load_dataset(config.dataset, "test", root=data_root)
    # the classes come from the labels (10 for MNIST), before --limit can hide one
    classes = count_classes(config.dataset, train_labels, test_labels, required=config.model == "cvae")
    source = dataset_source(config.dataset)
    if resume and source != run.read_config_dict().get("data", source):
        raise ValueError(f"{config.dataset}: the data changed since this run started (its files' "
                         f"sha256 differ from those in {run.file(run.CONFIG)}); resume on the "
                         f"same data, or start a new run")
    train_images, train_labels = train_images[:config.limit], train_labels[:config.limit].astype(np.int64)
    test_images, test_labels = test_images[:config.test_limit], test_labels[:config.test_limit].astype(np.int64)

    init_rng, shuffle_rng, noise_rng = _generators(config.seed)
    rows, start_epoch = [], 0
    if resume:
        model, optimizer_state, meta = run.load_checkpoint(expect_kind=config.model)
        optimizer = Adam(model.parameters(), lr=config.lr)
        optimizer.load_state_dict(optimizer_state)
        shuffle_rng.bit_generator.state = meta["shuffle_rng"]
        noise_rng.bit_generator.state = meta["noise_rng"]
        rows, start_epoch = meta["metrics"], meta["epoch"]
        if start_epoch > config.epochs:
            raise ValueError(f"{out_dir} has already trained {start_epoch} epochs; --epochs "
                             f"{config.epochs} would shorten it (give at least {start_epoch})")
        log(f"resuming {out_dir} after epoch {start_epoch} of {config.epochs}")
    else:
        model = build_model(config.model_config(classes), rng=init_rng)
        optimizer = Adam(model.parameters(), lr=config.lr)
    # The BLAS (library, kernel, threads) goes on record: it explains a run's speed, not its numbers.
    run.write_config(config, extra={"blas": blas_info(), **({} if source is None else {"data": source})})
    for callback in callbacks:
        callback.on_start(run, config, model)

    with DataParallel(model, config.workers) as parallel:
        _train_epochs(config, run, model, optimizer, parallel, rows, start_epoch,
                      (train_images, train_labels), (test_images, test_labels),
                      shuffle_rng, noise_rng, progress, log, callbacks)
    run.save_model(model, config)
    for callback in callbacks:
        callback.on_end(rows, model)
    return rows


def resumed_config(saved, given=None):
    """The configuration a resumed run continues with: ``saved``, with ``given``'s epochs and
    workers (None keeps the saved ones). Raises ValueError naming every other setting in which
    ``given`` differs from ``saved``."""
    if given is None:
        return saved
    differences = config_differences(saved, given)
    if differences:
        raise ValueError("the flags given with --resume differ from the run's saved configuration: "
                         + "; ".join(differences) + f". Only {' and '.join(RESUMABLE)} may change "
                         f"when resuming")
    return replace(saved, epochs=given.epochs,
                   workers=saved.workers if given.workers is None else given.workers)


def ensure_trained(config, out_dir, data_root=None, progress=True, log=print, callbacks=()):
    """Train ``config`` into ``out_dir`` unless it is already done there; resume a partial run.

    A directory holding a run with different settings is an error, not silently reused.
    ``callbacks`` follow the training, as in :func:`train`. Returns the metric rows.
    """
    config.validate()
    run = RunDirectory(out_dir)
    if not run.exists():
        return train(config, out_dir, data_root=data_root, progress=progress, log=log,
                     callbacks=callbacks)
    saved = run.read_config()
    differences = config_differences(saved, config, ignore=("workers",))
    if differences:
        raise ValueError(f"{out_dir} holds a run with other settings ({'; '.join(differences)}); "
                         f"remove it or choose another directory")
    if run.is_finished():
        log(f"{out_dir}: finished, skipped")
        return run.read_metrics()
    if run.has_checkpoint():
        return train(config, out_dir, resume=True, data_root=data_root, progress=progress, log=log,
                     callbacks=callbacks)
    return train(config, out_dir, data_root=data_root, progress=progress, log=log, callbacks=callbacks)


def _train_epochs(config, run, model, optimizer, parallel, rows, start_epoch, train_data,
                  test_data, shuffle_rng, noise_rng, progress, log, callbacks):
    (train_images, train_labels), (test_images, test_labels) = train_data, test_data
    steps_per_epoch = math.ceil(len(train_images) / config.batch_size)
    for epoch in range(start_epoch + 1, config.epochs + 1):
        def beta_for_step(batch, epoch=epoch):
            step = (epoch - 1) * steps_per_epoch + batch + 1
            return kl_weight(epoch, config.warmup_epochs, config.beta, config.schedule, step, steps_per_epoch)

        started = time.perf_counter()
        bar = tqdm(total=len(train_images), desc=f"epoch {epoch}/{config.epochs}", unit="img",
                   leave=False, disable=not progress, dynamic_ncols=True)
        try:
            train_recon, train_kl, beta = train_epoch(model, optimizer, train_images, train_labels,
                                                      config.batch_size, beta_for_step, shuffle_rng,
                                                      noise_rng, bar, epoch, parallel)
        except TrainingDiverged as error:
            raise TrainingDiverged(f"{error}. Training stopped; the last good checkpoint "
                                   f"(epoch {start_epoch if not rows else rows[-1]['epoch']}) is "
                                   f"left intact in {run.path}. Try a smaller --lr.") from None
        finally:
            bar.close()
        train_seconds = time.perf_counter() - started
        test = evaluate_elbo(model, test_images, test_labels, _evaluation_rng(config.seed, epoch),
                             parallel=parallel)
        row = {"epoch": epoch, "beta": beta, "train_recon": train_recon, "train_kl": train_kl,
               "train_total": train_recon + beta * train_kl,
               "train_ratio": train_recon / train_kl if train_kl > 0 else float("inf"),
               "test_recon": test["recon"], "test_kl": test["kl"], "test_total": test["total"],
               "seconds": time.perf_counter() - started,
               "images_per_s": len(train_images) / train_seconds}
        rows.append(row)
        meta = {"epoch": epoch, "metrics": rows, "train_config": config.to_dict(),
                "shuffle_rng": shuffle_rng.bit_generator.state,
                "noise_rng": noise_rng.bit_generator.state}
        run.save_checkpoint(model, optimizer, meta)
        run.write_metrics(rows)
        for callback in callbacks:
            callback.on_epoch(row, model)
        log(f"epoch {epoch:3d}/{config.epochs}  beta {beta:.3f}  "
            f"train recon {train_recon:8.3f} kl {train_kl:6.3f} total {row['train_total']:8.3f} "
            f"ratio {row['train_ratio']:5.1f}  "
            f"test recon {test['recon']:8.3f} kl {test['kl']:6.3f}  "
            f"{row['seconds']:.1f}s  {row['images_per_s']:.0f} img/s")


def start_training(options, out_dir, resume=False, data_root=None, progress=True, log=print,
                   callbacks=(), tensorboard=None):
    """`npvae train`: ``options`` maps TrainConfig fields to the values given on the command
    line (None: not given). A new run takes the defaults for the rest; a resumed run takes
    its saved configuration, and a given value that conflicts with it is an error naming it
    (see :func:`train`). ``tensorboard``: None, True (log to RUN_DIR/tensorboard/) or a
    directory for TensorBoard event files (npvae.tracking; RuntimeError, before training
    starts, when tensorboardX is not installed)."""
    from ..tracking import TensorBoardLogger
    given = {k: v for k, v in options.items() if v is not None}
    if resume:
        run = RunDirectory(out_dir)
        if not run.exists():
            raise FileNotFoundError(f"{out_dir}: nothing to resume (no config.json)")
        config = replace(run.read_config(), **given)
    else:
        config = TrainConfig(**given)
    config.validate()
    if tensorboard is not None:
        logdir = None if tensorboard is True else tensorboard
        callbacks = (*callbacks, TensorBoardLogger(logdir, data_root=data_root))
    log(f"npvae train: {config.model.upper()} on {config.dataset} -> {out_dir}")
    log(describe_blas())
    return train(config, out_dir, resume=resume, data_root=data_root, progress=progress, log=log,
                 callbacks=callbacks)
