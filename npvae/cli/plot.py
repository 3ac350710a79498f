"""`npvae plot`: not written yet."""


def add_parser(subparsers):
    subparsers.add_parser("plot", help="(not available yet)")
