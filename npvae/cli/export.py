"""`npvae export RUN_DIR --tensorboard [DIR]`: a finished run's log for an experiment tracker."""
from ..tracking import export_run
from .common import add_data_flag

def add_parser(subparsers):
    p = subparsers.add_parser(
        "export", help="write a trained run's metrics, images and settings for TensorBoard",
        description="Write TensorBoard event files from a run's metrics.csv and model: every epoch's "
                    "scalars (as `npvae train --tensorboard` logs them), the reconstruction and "
                    "prior-sample grids of the final model, and the configuration as hparams. "
                    "Needs tensorboardX: pip install -e \".[tracking]\".")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory made by `npvae train`")
    p.add_argument("--tensorboard", nargs="?", const=True, default=None, metavar="DIR",
                   help="write TensorBoard event files into DIR (default: RUN_DIR/tensorboard/)")
    add_data_flag(p)
    p.set_defaults(run=run)


def run(args):
    if args.tensorboard is None:
        raise ValueError("nothing to export: give --tensorboard [DIR]")
    logdir = None if args.tensorboard is True else args.tensorboard
    export_run(args.run_dir, logdir, data_root=args.data, log=print)
    return 0
