"""The ``npvae`` command line: one module per subcommand, each adding its own parser."""
import argparse
import sys

from .. import __version__
from . import evaluate, export, gradcheck, inspect, plot, pretrained, report, sweep, train

SUBCOMMANDS = (train, evaluate, sweep, plot, report, export, gradcheck, inspect, pretrained)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="npvae",
        description="Convolutional VAE / CVAE on MNIST in NumPy + Numba, every gradient by hand.")
    parser.add_argument("--version", action="version", version=f"npvae {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(subparsers)
    return parser


def main(argv=None):
    """Entry point: expected failures become one clear line on stderr, not a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args) or 0
    except KeyboardInterrupt:
        print("\nnpvae: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, RuntimeError) as error:
        print(f"npvae {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
