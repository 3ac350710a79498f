"""Reader for the IDX format used by MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number ``00 00 <type> <ndims>``, then ``ndims``
big-endian uint32 dimension sizes, then the values in C order, big-endian.
Files may be gzip-compressed; compression is detected from the first two
bytes (``1f 8b``), not from the file name.
"""

import gzip
import zlib
from pathlib import Path

import numpy as np

# IDX type code -> big-endian dtype of the stored values.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

GZIP_MAGIC = b"\x1f\x8b"


class DataError(ValueError):
    """A data file is missing, malformed, or fails its checksum."""


def read_stored(path):
    """Read a file and undo gzip compression if present.

    Returns ``(stored, content)``: the bytes on disk and the IDX bytes
    (the same object when the file is not compressed). Both are returned
    so that checksums of either form can be checked without a second read.
    Missing or unreadable files raise the usual ``OSError``.
    """
    stored = Path(path).read_bytes()
    if not stored.startswith(GZIP_MAGIC):
        return stored, stored
    try:
        return stored, gzip.decompress(stored)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: corrupt gzip stream ({exc}); "
                        "the file is damaged or incompletely downloaded") from exc


EXPECTED_SHAPES = {1: "labels (N,)", 3: "images (N, rows, columns)"}


def parse_idx(content, path="<bytes>", ndim=None):
    """Decode IDX bytes into an array of shape ``dims`` in native byte order.

    ``path`` is used only in error messages. ``ndim``, when given, is the number of
    dimensions the file must have (images 3, labels 1); it is checked before anything is
    computed from the sizes. Every inconsistency between the header and the payload
    length raises ``DataError``.
    """
    if len(content) < 4:
        raise DataError(f"{path}: too short for an IDX header "
                        f"({len(content)} bytes)")
    zero0, zero1, type_code, ndims = content[:4]
    if zero0 or zero1:
        raise DataError(f"{path}: bad IDX magic number {content[:4].hex()} "
                        "(must start with two zero bytes); not an IDX file")
    if type_code not in IDX_DTYPES:
        raise DataError(f"{path}: unknown IDX type code 0x{type_code:02x} "
                        f"(known: {', '.join(f'0x{c:02x}' for c in IDX_DTYPES)})")
    if ndims == 0:
        raise DataError(f"{path}: IDX header declares 0 dimensions")
    if ndim is not None and ndims != ndim:
        raise DataError(f"{path}: the IDX header declares {ndims} dimensions, but a file of "
                        f"{EXPECTED_SHAPES.get(ndim, f'{ndim}-D data')} has {ndim}; the file is "
                        f"damaged or not the kind expected here")

    header_len = 4 + 4 * ndims
    if len(content) < header_len:
        raise DataError(f"{path}: truncated header: {ndims} dimensions need "
                        f"{header_len} bytes, found {len(content)}")
    dims = tuple(int(d) for d in np.frombuffer(content, ">u4", ndims, offset=4))

    dtype = IDX_DTYPES[type_code]
    # Python ints: the product cannot overflow, unlike np.prod on uint32.
    expected = dtype.itemsize
    for d in dims:
        expected *= d
    found = len(content) - header_len
    if found != expected:
        problem = "truncated" if found < expected else "too long"
        raise DataError(
            f"{path}: {problem}: dimensions {dims} of {dtype.name} need "
            f"{expected} bytes of data after the {header_len}-byte header "
            f"({header_len + expected} in total), found {found}")

    values = np.frombuffer(content, dtype, offset=header_len).reshape(dims)
    # astype copies, so the result is writable and in native byte order.
    return values.astype(dtype.newbyteorder("="))


def read_idx(path, ndim=None):
    """Read an IDX file (gzip-compressed or raw) into a NumPy array.

    Returns an array whose shape is the file's dimensions, e.g. MNIST images
    ``(60000, 28, 28)`` uint8 and labels ``(60000,)`` uint8. Multi-byte types
    are converted to native byte order. Malformed files raise ``DataError``
    naming the file and the problem; ``ndim`` is the number of dimensions required.
    """
    _, content = read_stored(path)
    return parse_idx(content, path, ndim)
