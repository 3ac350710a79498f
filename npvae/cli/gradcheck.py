"""`npvae gradcheck`: not written yet."""


def add_parser(subparsers):
    subparsers.add_parser("gradcheck", help="(not available yet)")
