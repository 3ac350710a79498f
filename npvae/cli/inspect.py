"""`npvae inspect`: a model layer by layer, then one batch through it, forward and backward."""
import os

from ..data import DATASETS
from ..diagnostics.inspect import inspect_run
from .common import add_data_flag


def add_parser(subparsers):
    p = subparsers.add_parser(
        "inspect", help="show a model layer by layer and what one batch does inside it",
        description="Print the model's layers (input and output shapes, parameters, forward MFLOP "
                    "per image), then run one batch through the model's own forward, loss and "
                    "backward and print, per layer, the activation mean, std, fraction of zeros and "
                    "of dead units, the gradient norms of its input and parameters; the loss split "
                    "into reconstruction and KL, the KL per latent dimension and the active units "
                    "(Burda et al. 2016). Uses the test set when its files are on disk, else "
                    "synthetic strokes (and says so). --plot draws the gradient flow at the start "
                    "and end of training into RUN_DIR/figures/.")
    p.add_argument("run_dir", nargs="?", default=None, metavar="RUN_DIR",
                   help="a run directory or model/checkpoint .npz (default: a freshly initialised model)")
    p.add_argument("--model", choices=("vae", "cvae"), default=None,
                   help="model kind: which to build when no RUN_DIR is given (default: vae), or the "
                        "kind RUN_DIR must hold")
    p.add_argument("--latent-dim", type=int, default=2, help="for a fresh model (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=128, metavar="N", help="default: %(default)s")
    p.add_argument("--beta", type=float, default=1.0, help="KL weight of the loss (default: %(default)s)")
    p.add_argument("--dataset", default=None, metavar="NAME_OR_PATH",
                   help=f"one of {', '.join(DATASETS)} or a folder/.npz of your own "
                        "(default: the run's data set, else mnist)")
    add_data_flag(p)
    p.add_argument("--download", action="store_true", help="download the data set if it is missing")
    p.add_argument("--active-images", type=int, default=2000, metavar="N",
                   help="test images over which the active units are counted, when the data set is "
                        "available (default: %(default)s; else over the batch)")
    p.add_argument("--seed", type=int, default=0, help="batch choice, eps, fresh weights (default: %(default)s)")
    p.add_argument("--save", default=None, metavar="FILE.json", help="also write the report as JSON")
    p.add_argument("--plot", action="store_true",
                   help="also draw the gradient flow (start and end of training) into "
                        "RUN_DIR/figures/10_gradient_flow.png")
    p.set_defaults(run=run)


def run(args):
    if args.plot and (args.run_dir is None or not os.path.isdir(args.run_dir)):
        raise ValueError("--plot needs a RUN_DIR directory: it compares the run's first and last "
                         "model and draws into RUN_DIR/figures/")
    inspect_run(args.run_dir, args.model, args.latent_dim, args.batch_size, args.beta, args.dataset,
                args.data, args.download, args.active_images, args.seed, args.save)
    if args.plot:
        from ..viz.gradient_flow import draw_gradient_flow     # noqa: PLC0415 (matplotlib only when drawing)
        path = draw_gradient_flow(args.run_dir, args.batch_size, args.seed, args.data, args.download,
                                  args.beta)
        print(f"\nwrote {path}")
    return 0
