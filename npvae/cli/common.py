"""Flags that several commands share, spelled one way everywhere."""
import argparse


def add_data_flag(parser):
    """``--data DIR``: where the data set's files are (``--dataset-root`` is its old name)."""
    parser.add_argument("--data", "--dataset-root", dest="data", default=None, metavar="DIR",
                        help="folder holding the data set (default: $NPVAE_DATA, then "
                             "~/.cache/npvae, then download)")


def positive_int(text):
    """An argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value
