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


__all__ = ["VAE", "CVAE", "one_hot", "MODELS", "KINDS", "build_model", "model_config",
           "check_model_options", "LIKELIHOODS", "VARIANCES"]
