"""`npvae plot RUN_DIR`: draw every figure of the paper for a trained run into RUN_DIR/figures/.

matplotlib is imported when the command runs, not when the CLI starts.
"""
from .common import add_data_flag

DEFAULT_CLASS = 2  # npvae.viz.conditional.DEFAULT_CLASS


def add_parser(subparsers):
    p = subparsers.add_parser(
        "plot", help="draw the paper's figures for a run directory into RUN_DIR/figures/",
        description="Draw the paper's figures (PNG) for a trained run: training curves, "
                    "reconstructions, latent space, traversal grid, interpolations, prior samples, "
                    "and for a CVAE class-conditional samples, disentanglement and the class-mixed "
                    "latent space. The same run and --seed always give the same pictures.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `npvae train`")
    p.add_argument("--seed", type=int, default=0, help="seed for every random choice (default: %(default)s)")
    add_data_flag(p)
    p.add_argument("--class", dest="cvae_class", type=int, default=DEFAULT_CLASS, metavar="C",
                   help="CVAE: the class of the class-conditional traversals (default: %(default)s)")
    p.set_defaults(run=run)


def run(args):
    from ..viz import make_all_figures

    paths = make_all_figures(args.run_dir, seed=args.seed, dataset_root=args.data,
                             cvae_class=args.cvae_class, log=print)
    print(f"npvae plot: wrote {len(paths)} figures")
    return 0
