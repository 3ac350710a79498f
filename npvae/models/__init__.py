"""The paper's models: the convolutional VAE and its label-conditioned CVAE."""
from .config import KINDS, LIKELIHOODS, VARIANCES, check_model_options, model_config
from .cvae import CVAE, one_hot
from .vae import VAE

MODELS = {"vae": VAE, "cvae": CVAE}


def build_model(config, rng=None):
    """Rebuild a model from its ``config()`` dict (see npvae.models.config)."""
    kind = config.get("model")
    if kind not in MODELS:
        raise ValueError(f"unknown model {kind!r}; expected one of {sorted(MODELS)}")
    kwargs = {k: v for k, v in config.items() if k != "model"}
    return MODELS[kind](**kwargs, rng=rng)


def load_pretrained(name, out_dir=None):
    """The paper's trained VAE or CVAE, shipped with npvae (see npvae.pretrained.load_pretrained)."""
    # The package's one upward import (allowed in tests/test_architecture.py): users look for the
    # trained models beside the models, but their files and checksums live in npvae.pretrained,
    # which needs npvae.runs. Imported here, when called, so npvae.models stays free of it.
    from ..pretrained import load_pretrained as load
    return load(name, out_dir)


__all__ = ["VAE", "CVAE", "one_hot", "MODELS", "KINDS", "build_model", "load_pretrained", "model_config",
           "check_model_options", "LIKELIHOODS", "VARIANCES"]
