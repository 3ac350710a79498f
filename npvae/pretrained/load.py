"""The paper's trained VAE and CVAE (Table 4), shipped with npvae as package data.

Each model's folder here is laid out like a run directory of `npvae train` (config.json,
metrics.csv, model.npz), plus provenance.json (the command and code commit that trained it)
and SHA256SUMS. The checksums are verified every time a model is loaded.

    vae = load_pretrained("vae")                            # the model, ready to use
    load_pretrained("cvae", out_dir="runs/cvae-pretrained")  # and a complete run directory
"""
import json
import os

from ..runs import RunDirectory
from .checksums import verify_folder

PRETRAINED = {"vae": "vae-mnist", "cvae": "cvae-mnist"}   # name -> folder of package data
PROVENANCE = "provenance.json"
FILES = (RunDirectory.CONFIG, RunDirectory.METRICS, RunDirectory.MODEL, PROVENANCE)


def pretrained_folder(name):
    """The folder of the shipped files of ``name`` ("vae" or "cvae")."""
    if name not in PRETRAINED:
        raise ValueError(f"no pretrained model {name!r}; choose one of {', '.join(PRETRAINED)}")
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), PRETRAINED[name])


def pretrained_run(name):
    """The shipped files of ``name`` as a RunDirectory to read from (never write into it: it is
    part of the installed package), after checking every file against SHA256SUMS."""
    folder = pretrained_folder(name)
    verify_folder(folder, FILES)
    return RunDirectory(folder)


def provenance(name):
    """How the shipped model ``name`` was made: a dict with the training ``command``, the code
    ``commit``, the ``workers`` count and the final epoch's metrics."""
    with open(os.path.join(pretrained_run(name).path, PROVENANCE)) as f:
        return json.load(f)


def provenance_line(record):
    """One line saying where a model came from, for config.json and the report."""
    return (f"npvae's shipped {record['name']} model: trained by `{record['command']}` at commit "
            f"{record['commit']} ({record['workers']} workers)")


def load_pretrained(name, out_dir=None):
    """The paper's trained ``name`` ("vae" or "cvae"; seed 0, 30 epochs, Table 3's settings),
    checksums verified. With ``out_dir``, also write it there as a complete run directory
    (see :func:`write_pretrained_run`). Raises PretrainedFileError (a ValueError) naming a
    shipped file that is missing or corrupted."""
    if out_dir is not None:
        return write_pretrained_run(name, out_dir).load_model(expect_kind=name)
    return pretrained_run(name).load_model(expect_kind=name)


def write_pretrained_run(name, out_dir):
    """Write the shipped ``name`` into ``out_dir`` as the run directory `npvae train` would have
    left (config.json, metrics.csv, model.npz), so that `npvae plot/report/evaluate/inspect`
    work on it at once. config.json gains a ``pretrained`` line saying where it came from.
    Refuses a directory that already holds a run. Returns the new RunDirectory."""
    source = pretrained_run(name)
    target = RunDirectory(out_dir)
    for existing in (target.CONFIG, target.MODEL, target.CHECKPOINT):
        if os.path.exists(target.file(existing)):
            raise FileExistsError(f"{target.file(existing)} exists: {out_dir} already holds a run; "
                                  f"choose another directory")
    config = source.read_config()
    recorded = source.read_config_dict()
    extra = {k: v for k, v in recorded.items() if k not in config.to_dict()}
    extra["pretrained"] = provenance_line(provenance(name))
    model = source.load_model(expect_kind=name)
    target.write_metrics(source.read_metrics(required=True))
    target.save_model(model, config)
    target.write_config(config, extra)      # last: a run counts as started once config.json exists
    return target
