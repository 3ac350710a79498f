"""Running many independent tasks on a Dask cluster, or one after another in this process.

A ``--cluster`` value names where the tasks run:

    none             in this process, one task after another; Dask is not needed
    local            a LocalCluster on this machine: one single-threaded worker process per
                     core, bound to 127.0.0.1, no dashboard
    tcp://HOST:PORT  an existing Dask scheduler (started by hand, by dask-jobqueue on SLURM,
                     by dask-kubernetes, ...); every path a task is given must then lie on a
                     filesystem all workers share

Dask's ``distributed`` is an optional extra (``pip install -e ".[cluster]"``): it is imported
only when a cluster is opened, and without it ``local`` and an address fail with one line
saying how to install it. The engine is Dask's own: when a worker process dies, the
scheduler gives its task to another worker; npvae's tasks are written so that running one
again continues from where the dead one stopped (see npvae.experiments.tasks).
"""
import contextlib
import importlib.util
import logging
import uuid

from .parallel import available_cores

INSTALL_HINT = 'pip install -e ".[cluster]"'
SCHEDULER_SCHEMES = ("tcp://", "tls://", "ucx://", "ws://", "wss://", "inproc://")


def dask_available():
    """True when Dask's ``distributed`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec("distributed") is not None
    except (ImportError, ValueError):      # a broken or blocked installation
        return False


def default_cluster():
    """``local`` when Dask is installed, else ``none``."""
    return "local" if dask_available() else "none"


def check_cluster(spec):
    """Return ``spec`` if it names a cluster (none, local or a scheduler address); else
    raise ValueError listing the forms."""
    if spec in ("none", "local") or (isinstance(spec, str) and spec.startswith(SCHEDULER_SCHEMES)
                                     and len(spec) > spec.index("://") + 3):
        return spec
    raise ValueError(f"--cluster must be 'none', 'local' or a scheduler address such as "
                     f"tcp://HOST:PORT; got {spec!r}")


def require_distributed(spec):
    try:
        import distributed
    except ImportError:
        raise RuntimeError(f"--cluster {spec} needs Dask's distributed package, which is not "
                           f"installed: {INSTALL_HINT} (or use --cluster none)") from None
    return distributed


@contextlib.contextmanager
def open_cluster(spec, local_workers=None):
    """A Dask ``Client`` for ``spec`` (None for ``none``), closed (with the LocalCluster it
    started, if any) when the block ends, even on an error.

    ``local_workers``: worker processes of a ``local`` cluster (default: one per core).
    """
    check_cluster(spec)
    if spec == "none":
        yield None
        return
    distributed = require_distributed(spec)
    if local_workers is not None and local_workers < 1:
        raise ValueError(f"--local-workers must be >= 1, got {local_workers}")
    cluster = None
    logging.getLogger("distributed").setLevel(logging.WARNING)    # no INFO lines per worker
    if spec == "local":
        # One single-threaded process per core: each task holds BLAS to one thread, and
        # several tasks share the machine's cores. Loopback only, no dashboard: nothing listens
        # on the network.
        cluster = distributed.LocalCluster(n_workers=local_workers or available_cores(),
                                           threads_per_worker=1, processes=True, host="127.0.0.1",
                                           dashboard_address=None)
    try:
        try:
            client = distributed.Client(cluster if cluster is not None else spec, timeout="30s")
        except OSError as error:
            raise OSError(f"could not reach the Dask scheduler at {spec} ({error})") from None
        try:
            yield client
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


def map_unordered(function, items, client=None, names=None):
    """Yield ``(index, function(items[index]))`` as each call finishes.

    With a ``client``, every call is a task on the cluster's workers (submitted in order; the
    scheduler reruns a task whose worker died). Without one, the calls run here, one after
    another, in order. An exception raised by ``function`` is raised here and the tasks not
    yet finished are cancelled; so are they when the caller stops iterating. ``names`` (one
    per item) name the tasks on the cluster's dashboard.
    """
    items = list(items)
    if client is None:
        for index, item in enumerate(items):
            yield index, function(item)
        return
    distributed = require_distributed("address")
    token = uuid.uuid4().hex[:8]
    names = names or [str(index) for index in range(len(items))]
    futures = {client.submit(function, item, key=f"npvae-{name}-{token}", pure=False): index
               for index, (item, name) in enumerate(zip(items, names))}
    try:
        for future in distributed.as_completed(futures):
            index = futures[future]
            try:
                result = future.result()
            except distributed.KilledWorker as error:
                raise RuntimeError(f"task {names[index]}: every worker that ran it died ({error}); "
                                   f"is it running out of memory?") from None
            yield index, result
    finally:
        client.cancel([future for future in futures if not future.done()])
