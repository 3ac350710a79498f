"""How a loss averages over a batch, or over the whole batch that a shard belongs to.

Every loss here is a mean over the images of a batch. When a batch is split into shards that
run on different cores (npvae.runtime.DataParallel), each shard's loss passes the whole
batch's size: its value is then its share of the batch's mean and its gradient its part of the
batch's gradient, entry for entry the numbers the unsplit batch gives.
"""


def batch_divisor(batch_size, rows, caller):
    """The N a batch mean divides by: ``rows`` (the images given) when ``batch_size`` is None,
    else ``batch_size``, which must be a whole number no smaller than ``rows``."""
    if batch_size is None:
        return rows
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < max(rows, 1):
        raise ValueError(f"{caller}: batch_size must be a whole number of at least the {rows} "
                         f"images given, got {batch_size!r}")
    return int(batch_size)
