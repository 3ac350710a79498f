"""`npvae report`: not written yet."""


def add_parser(subparsers):
    subparsers.add_parser("report", help="(not available yet)")
