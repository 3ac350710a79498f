"""What it takes to build one of the paper's models, checked in one place.

A model's configuration is a small JSON-able dict, ``VAE.config()``, stored in every
model and checkpoint file and rebuilt by :func:`npvae.models.build_model`:

    {"model": "vae" | "cvae", "latent_dim": d,
     "num_classes": C,                                    (CVAE only)
     "likelihood": "gaussian", "variance": ..., "pixel_variance": ...}   (Gaussian decoder only)
"""
KINDS = ("vae", "cvae")
LIKELIHOODS = ("bernoulli", "gaussian")
VARIANCES = ("fixed", "learned")


def check_model_options(kind="vae", latent_dim=2, likelihood="bernoulli", variance="fixed",
                        pixel_variance=1.0, num_classes=None, owner="model"):
    """Raise ValueError, naming ``owner`` and the bad value, unless the options build a model.
    (``num_classes`` None: not known yet, as in a training configuration before the data.)"""
    if kind not in KINDS:
        raise ValueError(f"{owner}: model must be one of {KINDS}, got {kind!r}")
    if isinstance(latent_dim, bool) or int(latent_dim) != latent_dim or latent_dim < 1:
        raise ValueError(f"{owner}: latent_dim must be an integer >= 1, got {latent_dim!r}")
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"{owner}: likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    if variance not in VARIANCES:
        raise ValueError(f"{owner}: the Gaussian variance must be one of {VARIANCES}, got {variance!r}")
    if not pixel_variance > 0:
        raise ValueError(f"{owner}: pixel_variance must be > 0, got {pixel_variance!r}")
    if kind == "cvae" and num_classes is not None and int(num_classes) < 2:
        raise ValueError(f"{owner}: a CVAE needs num_classes >= 2, got {num_classes!r}")


def model_config(kind="vae", latent_dim=2, likelihood="bernoulli", variance="fixed",
                 pixel_variance=1.0, num_classes=10):
    """The checked configuration dict of a model, exactly as ``model.config()`` returns it."""
    check_model_options(kind, latent_dim, likelihood, variance, pixel_variance,
                        num_classes if kind == "cvae" else None)
    config = {"model": kind, "latent_dim": int(latent_dim)}
    if likelihood != "bernoulli":
        config.update(likelihood=likelihood, variance=variance, pixel_variance=float(pixel_variance))
    return config if kind == "vae" else {**config, "num_classes": int(num_classes)}
