"""Refresh the shipped models from finished runs: a maintainer's tool, not used at run time.

    npvae train --out runs/vae-mnist --no-progress
    python -m npvae.pretrained.package vae runs/vae-mnist \\
        --command "npvae train --out runs/vae-mnist --no-progress" --commit "$(git rev-parse --short HEAD)"

writes the run's config.json, metrics.csv and model.npz into this package's folder for the
model (through npvae.runs.RunDirectory: the same arrays, the same metrics to the digit),
then provenance.json (the command, the commit, the final metrics) and SHA256SUMS.
"""
import argparse
import datetime
import sys

from ..files import atomic_write_text
from ..runs import RunDirectory, is_paper_setting, json_text
from .checksums import write_sums
from .load import FILES, PROVENANCE, pretrained_folder


def package_run(name, run_dir, command, commit):
    """Snapshot the finished run ``run_dir`` as the shipped model ``name``; returns its folder."""
    source = RunDirectory(run_dir)
    config = source.read_config()
    if config.model != name:
        raise ValueError(f"{run_dir} holds a {config.model.upper()}, not a {name.upper()}")
    if not source.is_finished():
        raise ValueError(f"{run_dir}: not finished (needs model.npz and all {config.epochs} epochs)")
    if not is_paper_setting(source.read_config_dict()):
        raise ValueError(f"{run_dir}: not in the paper's setting (Table 3); only those are shipped")
    folder = pretrained_folder(name)
    target = RunDirectory(folder)
    rows = source.read_metrics(required=True)
    target.write_metrics(rows)
    target.save_model(source.load_model(expect_kind=name), config)
    target.write_config(config)
    record = {"name": name.upper(), "command": command, "commit": commit,
              "workers": config.workers, "seed": config.seed, "epochs": config.epochs,
              "final_epoch": rows[-1],
              "packaged": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    atomic_write_text(target.file(PROVENANCE), json_text(record))
    write_sums(folder, FILES)
    return folder


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m npvae.pretrained.package",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=("vae", "cvae"))
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument("--command", required=True, help="the exact command that trained the run")
    parser.add_argument("--commit", required=True, help="the code commit it was trained with")
    args = parser.parse_args(argv)
    try:
        print(package_run(args.name, args.run_dir, args.command, args.commit))
    except (OSError, ValueError) as error:
        print(f"package: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
