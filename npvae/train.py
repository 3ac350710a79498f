"""Training a VAE or CVAE: the loss of eq. 30 with KL annealing (eq. 31), Adam, run directories.

Loss convention: per image, BCE summed over the 784 pixels plus beta times the KL summed
over latent dimensions, in nats; averaged over the images of a batch for the gradient,
and over all images of the epoch for the reported figures. With ``likelihood="gaussian"``
the Gaussian negative log-density of the pixels (npvae.losses.gaussian) takes the BCE's place.

A run directory holds
    config.json       the TrainConfig
    metrics.csv       one row per finished epoch (METRIC_COLUMNS)
    checkpoint.npz    model + Adam state + RNG states + metrics, rewritten after every epoch
    model.npz         the final model
All are written atomically, so a run killed at any moment resumes (``resume=True``) from
its last finished epoch and ends with exactly the metrics of an uninterrupted run.
"""
import csv
import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields, replace

import numpy as np
from tqdm import tqdm

from .checkpoint import (atomic_write_text, load_checkpoint, save_checkpoint, save_model)
from .data import DATASETS, load_dataset, minibatches, to_float
from .evaluate import evaluate_elbo
from .losses import NegativeELBO
from .models import LIKELIHOODS, VARIANCES, build_model
from .optim import Adam
from .parallel import DataParallel, default_workers
from .schedules import SCHEDULES, kl_weight

METRIC_COLUMNS = ("epoch", "beta", "train_recon", "train_kl", "train_total", "train_ratio",
                  "test_recon", "test_kl", "test_total", "seconds", "images_per_s")


@dataclass
class TrainConfig:
    """Defaults are the paper's (Table 3): VAE, latent 2, batch 128, Adam 1e-3, 30 epochs, 10 warm-up."""
    model: str = "vae"
    dataset: str = "mnist"
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    latent_dim: int = 2
    warmup_epochs: int = 10
    beta: float = 1.0
    schedule: str = "epoch"
    seed: int = 0
    limit: int | None = None
    test_limit: int | None = None
    likelihood: str = "bernoulli"          # decoder p(x|z): "bernoulli" (the paper) or "gaussian"
    gaussian_variance: str = "fixed"       # Gaussian decoder: "fixed" sigma^2 or "learned" per pixel
    pixel_variance: float = 1.0            # the fixed sigma^2, or the learned one's starting value
    workers: int | None = None             # threads, each on a share of every batch; None: one
                                           # per core. A run is bit-identical for a given count.

    def validate(self):
        if self.model not in ("vae", "cvae"):
            raise ValueError(f"model must be 'vae' or 'cvae', got {self.model!r}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.likelihood not in LIKELIHOODS or self.gaussian_variance not in VARIANCES \
                or not self.pixel_variance > 0:
            raise ValueError(f"need likelihood in {LIKELIHOODS}, gaussian_variance in {VARIANCES} and "
                             f"pixel_variance > 0 (got {self.likelihood!r}, {self.gaussian_variance!r}, "
                             f"{self.pixel_variance})")
        for name in ("epochs", "batch_size", "latent_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0 or self.beta < 0 or self.warmup_epochs < 0:
            raise ValueError(f"need lr > 0, beta >= 0, warmup_epochs >= 0 "
                             f"(got {self.lr}, {self.beta}, {self.warmup_epochs})")
        for name in ("limit", "test_limit", "workers"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        return self

    def model_config(self):
        config = {"model": self.model, "latent_dim": self.latent_dim}
        if self.likelihood != "bernoulli":
            config.update(likelihood=self.likelihood, variance=self.gaussian_variance,
                          pixel_variance=self.pixel_variance)
        return config if self.model == "vae" else {**config, "num_classes": 10}

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def _generators(seed):
    """Independent streams for initialisation, shuffling and the training eps."""
    init, shuffle, noise = np.random.SeedSequence(seed).spawn(3)
    return np.random.default_rng(init), np.random.default_rng(shuffle), np.random.default_rng(noise)


def _evaluation_rng(seed, epoch):
    """A fresh stream per epoch, so test figures do not depend on where a run resumed."""
    return np.random.default_rng([seed, epoch, 1])


def csv_text(rows, columns):
    """Rows (dicts) as CSV text, floats with 6 decimals."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
    return out.getvalue()


def read_metrics(run_dir):
    """metrics.csv of a run as a list of dicts of floats (epoch as int)."""
    path = os.path.join(run_dir, "metrics.csv")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no metrics (has this run finished an epoch?)")
    with open(path, newline="") as f:
        return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()}
                for row in csv.DictReader(f)]


def train_step(model, optimizer, objective, x, labels, eps, beta):
    """One optimisation step on a batch: forward, loss (eq. 30), backward, Adam.

    ``model`` is a VAE/CVAE or a :class:`~npvae.parallel.DataParallel` around one.

    Returns (recon, kl) batch means. Raises TrainingDiverged, before touching the
    parameters, when the loss is not finite.
    """
    logits, mu, logvar = model.forward(x, eps, labels)
    total, recon, kl = objective.forward(logits, x, mu, logvar, beta)
    if not math.isfinite(total):
        raise TrainingDiverged(f"the loss is not finite (reconstruction {recon}, KL {kl})")
    optimizer.zero_grad()
    model.backward(*objective.backward())
    optimizer.step()
    return recon, kl


def train_epoch(model, optimizer, images, labels, batch_size, beta_for_step, shuffle_rng, noise_rng,
                progress=None, epoch=None, parallel=None):
    """One pass over the data. Returns per-image mean (recon, kl) and the batches' last beta.

    ``parallel``, a :class:`~npvae.parallel.DataParallel` around ``model``, runs the steps.
    """
    # The paper's Bernoulli decoder uses the default objective; others bring their own loss.
    objective = NegativeELBO() if model.likelihood == "bernoulli" else NegativeELBO(model.reconstruction_loss())
    recon_sum = kl_sum = 0.0
    seen = 0
    for batch, index in enumerate(minibatches(len(images), batch_size, shuffle_rng)):
        beta = beta_for_step(batch)
        x = to_float(images[index])
        eps = noise_rng.standard_normal((len(index), model.latent_dim), dtype=np.float32)
        try:
            recon, kl = train_step(parallel or model, optimizer, objective, x, labels[index], eps, beta)
        except TrainingDiverged as error:
            raise TrainingDiverged(f"epoch {epoch}, batch {batch + 1}: {error}") from None
        recon_sum += recon * len(index)
        kl_sum += kl * len(index)
        seen += len(index)
        if progress is not None:
            progress.update(len(index))
            progress.set_postfix(loss=f"{(recon_sum + beta * kl_sum) / seen:.2f}", beta=f"{beta:.2f}")
    return recon_sum / seen, kl_sum / seen, beta


def train(config, out_dir, resume=False, data_root=None, progress=True, log=print):
    """Train per ``config`` into ``out_dir``; returns the list of metric rows."""
    checkpoint_path = os.path.join(out_dir, "checkpoint.npz")
    if resume:
        config_path = os.path.join(out_dir, "config.json")
        if not os.path.exists(checkpoint_path) or not os.path.exists(config_path):
            raise FileNotFoundError(f"{out_dir}: nothing to resume (needs config.json and checkpoint.npz)")
        with open(config_path) as f:
            config = TrainConfig.from_dict(json.load(f))
    elif os.path.exists(checkpoint_path):
        raise FileExistsError(f"{out_dir} already holds a run; pass --resume to continue it "
                              f"or choose another --out")
    config.validate()
    if config.workers is None:      # record the count: it fixes the run's rounding
        config = replace(config, workers=default_workers())

    train_images, train_labels = load_dataset(config.dataset, "train", root=data_root)
    test_images, test_labels = load_dataset(config.dataset, "test", root=data_root)
    train_images, train_labels = train_images[:config.limit], train_labels[:config.limit].astype(np.int64)
    test_images, test_labels = test_images[:config.test_limit], test_labels[:config.test_limit].astype(np.int64)

    init_rng, shuffle_rng, noise_rng = _generators(config.seed)
    rows, start_epoch = [], 0
    if resume:
        model, optimizer_state, meta = load_checkpoint(checkpoint_path, expect_kind=config.model)
        optimizer = Adam(model.parameters(), lr=config.lr)
        optimizer.load_state_dict(optimizer_state)
        shuffle_rng.bit_generator.state = meta["shuffle_rng"]
        noise_rng.bit_generator.state = meta["noise_rng"]
        rows, start_epoch = meta["metrics"], meta["epoch"]
        log(f"resuming {out_dir} after epoch {start_epoch} of {config.epochs}")
    else:
        model = build_model(config.model_config(), rng=init_rng)
        optimizer = Adam(model.parameters(), lr=config.lr)
        os.makedirs(out_dir, exist_ok=True)
        atomic_write_text(os.path.join(out_dir, "config.json"), json.dumps(asdict(config), indent=2) + "\n")

    with DataParallel(model, config.workers) as parallel:
        _train_epochs(config, out_dir, model, optimizer, parallel, rows, start_epoch,
                      (train_images, train_labels), (test_images, test_labels),
                      shuffle_rng, noise_rng, checkpoint_path, progress, log)
    save_model(os.path.join(out_dir, "model.npz"), model, extra={"train_config": asdict(config)})
    return rows


def _train_epochs(config, out_dir, model, optimizer, parallel, rows, start_epoch, train_data,
                  test_data, shuffle_rng, noise_rng, checkpoint_path, progress, log):
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
                                   f"left intact in {out_dir}. Try a smaller --lr.") from None
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
        meta = {"epoch": epoch, "metrics": rows, "train_config": asdict(config),
                "shuffle_rng": shuffle_rng.bit_generator.state,
                "noise_rng": noise_rng.bit_generator.state}
        save_checkpoint(checkpoint_path, model, optimizer, meta)
        atomic_write_text(os.path.join(out_dir, "metrics.csv"), csv_text(rows, METRIC_COLUMNS))
        log(f"epoch {epoch:3d}/{config.epochs}  beta {beta:.3f}  "
            f"train recon {train_recon:8.3f} kl {train_kl:6.3f} total {row['train_total']:8.3f} "
            f"ratio {row['train_ratio']:5.1f}  "
            f"test recon {test['recon']:8.3f} kl {test['kl']:6.3f}  "
            f"{row['seconds']:.1f}s  {row['images_per_s']:.0f} img/s")
