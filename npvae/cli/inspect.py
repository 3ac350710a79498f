"""`npvae inspect`: not written yet."""


def add_parser(subparsers):
    subparsers.add_parser("inspect", help="(not available yet)")
