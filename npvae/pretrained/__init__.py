"""The paper's two trained models (Table 4), shipped with npvae: use one without training.

    from npvae.pretrained import load_pretrained     # also npvae.models.load_pretrained
    vae = load_pretrained("vae")

`npvae pretrained vae --out DIR` writes one as a run directory. README.md in this folder says
how the files were made and how to refresh them (``python -m npvae.pretrained.package``).
"""
from .checksums import PretrainedFileError, sha256_of, verify_folder
from .load import (PRETRAINED, load_pretrained, pretrained_folder, pretrained_run, provenance,
                   write_pretrained_run)

__all__ = ["load_pretrained", "write_pretrained_run", "pretrained_run", "pretrained_folder",
           "provenance", "PRETRAINED", "PretrainedFileError", "sha256_of", "verify_folder"]
