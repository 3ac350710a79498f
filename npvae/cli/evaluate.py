"""`npvae evaluate`: not written yet."""


def add_parser(subparsers):
    subparsers.add_parser("evaluate", help="(not available yet)")
