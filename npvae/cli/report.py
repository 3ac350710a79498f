"""`npvae report RUN_DIR`: one self-contained HTML page (RUN_DIR/report.html) for a trained run.

matplotlib is imported when the command runs, not when the CLI starts.
"""
from .common import add_data_flag


def add_parser(subparsers):
    p = subparsers.add_parser(
        "report", help="write RUN_DIR/report.html: configuration, metrics and every figure",
        description="Write RUN_DIR/report.html, a single self-contained page (figures embedded, "
                    "no network needed): the configuration, the final metrics (beside the paper's "
                    "Table 4 for a run in the paper's setting) and every figure with a caption. "
                    "Figures that are missing or older than the model are drawn first.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `npvae train`")
    p.add_argument("--seed", type=int, default=None,
                   help="redraw the figures with this seed if they were drawn with another "
                        "(default: keep existing figures; 0 when drawing them)")
    add_data_flag(p)
    p.add_argument("--class", dest="cvae_class", type=int, default=None, metavar="C",
                   help="CVAE: the class of the class-conditional traversals (redraws if it differs)")
    p.set_defaults(run=run)


def run(args):
    from ..viz import write_report

    write_report(args.run_dir, seed=args.seed, dataset_root=args.data,
                 cvae_class=args.cvae_class, log=print)
    return 0
