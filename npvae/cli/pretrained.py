"""`npvae pretrained {vae,cvae} --out DIR`: the paper's trained model as a run directory, no training.

    npvae pretrained vae --out runs/vae-pretrained && npvae report runs/vae-pretrained
"""
from ..pretrained import PRETRAINED, write_pretrained_run


def add_parser(subparsers):
    p = subparsers.add_parser(
        "pretrained", help="write the paper's trained VAE or CVAE (shipped with npvae) as a run directory",
        description="Write one of the two models of the paper's Table 4 that ship with npvae (MNIST, "
                    "seed 0, 30 epochs, the settings of Table 3) into DIR as the run directory "
                    "`npvae train` would have left: config.json, metrics.csv, model.npz. Then "
                    "`npvae plot DIR`, `npvae report DIR`, `npvae evaluate DIR` and `npvae inspect DIR` "
                    "work at once (figures and evaluation need only MNIST's test set). The shipped "
                    "files are checked against their SHA-256 checksums first.")
    p.add_argument("name", choices=sorted(PRETRAINED), help="which model")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="the new run directory (default: runs/<name>-pretrained)")
    p.set_defaults(run=run)


def run(args):
    out = args.out or f"runs/{args.name}-pretrained"
    directory = write_pretrained_run(args.name, out)
    last = directory.read_metrics(required=True)[-1]
    print(f"npvae pretrained: wrote the paper's {args.name.upper()} to {out} (epoch {last['epoch']}: "
          f"test -ELBO {last['test_total']:.2f} nats); next: npvae report {out}")
    return 0
