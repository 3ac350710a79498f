"""The configuration of a training run (``config.json`` of a run directory).

Defaults are the paper's (Table 3). A run's configuration is checked once, here, with
the model's part checked by npvae.models.config; a resumed run compares the flags it was
given against the saved configuration with :func:`config_differences`.
"""
from dataclasses import asdict, dataclass, fields

from ..data import dataset_name
from ..models import check_model_options, model_config
from ..optim import SCHEDULES

# Settings that may differ between the first start of a run and a resume of it: how far
# to train, how many threads, whether to show progress. Everything else fixes the numbers.
RESUMABLE = ("epochs", "workers")


@dataclass
class TrainConfig:
    """Defaults are the paper's (Table 3): VAE, latent 2, batch 128, Adam 1e-3, 30 epochs, 10 warm-up."""
    model: str = "vae"
    dataset: str = "mnist"                 # "mnist", "fashion-mnist", or the path of your own
                                           # (an IDX folder or an .npz; npvae.data.custom)
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
        """Raise ValueError naming the first bad setting; returns self. A data set given by
        path must exist and is made absolute here (so a run finds it from anywhere, and a
        resume with the same path spelled relatively agrees with the saved one)."""
        check_model_options(self.model, self.latent_dim, self.likelihood, self.gaussian_variance,
                            self.pixel_variance, owner="training configuration")
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ValueError(f"dataset must be a name or a path, got {self.dataset!r}")
        self.dataset = dataset_name(self.dataset)
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0 or self.beta < 0 or self.warmup_epochs < 0:
            raise ValueError(f"need lr > 0, beta >= 0, warmup_epochs >= 0 "
                             f"(got {self.lr}, {self.beta}, {self.warmup_epochs})")
        for name in ("limit", "test_limit", "workers"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        return self

    def model_config(self, num_classes=10):
        """The model's configuration (npvae.models.config); a CVAE has ``num_classes`` labels."""
        return model_config(self.model, self.latent_dim, self.likelihood, self.gaussian_variance,
                            self.pixel_variance, num_classes)

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def config_differences(saved, given, ignore=RESUMABLE):
    """['lr: saved 0.001, given 0.01', ...] for every setting of ``given`` that differs from
    ``saved`` (TrainConfigs), leaving out ``ignore``."""
    return [f"{f.name}: saved {getattr(saved, f.name)!r}, given {getattr(given, f.name)!r}"
            for f in fields(TrainConfig)
            if f.name not in ignore and getattr(saved, f.name) != getattr(given, f.name)]
