"""SHA-256 checksums of the shipped model files, in the format of ``sha256sum``.

A folder's ``SHA256SUMS`` lists one ``<hex digest>  <file name>`` line per file, so
``cd npvae/pretrained/vae-mnist && sha256sum -c SHA256SUMS`` checks it from a shell too.
"""
import hashlib
import os

from ..files import atomic_write_text

SUMS_FILE = "SHA256SUMS"


class PretrainedFileError(ValueError):
    """A shipped model file is missing or does not match its recorded checksum."""


def sha256_of(path):
    """Hex SHA-256 digest of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_sums(folder):
    """{file name: hex digest} from ``folder/SHA256SUMS``."""
    path = os.path.join(folder, SUMS_FILE)
    if not os.path.exists(path):
        raise PretrainedFileError(f"{path}: missing; the installed npvae is incomplete (reinstall it)")
    sums = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            digest, _, name = line.rstrip("\n").partition("  ")
            if len(digest) != 64 or not name:
                raise PretrainedFileError(f"{path}, line {number}: not '<sha256>  <file name>'")
            sums[name] = digest
    return sums


def write_sums(folder, names):
    """Write ``folder/SHA256SUMS`` for the files ``names`` of ``folder``."""
    lines = [f"{sha256_of(os.path.join(folder, name))}  {name}\n" for name in sorted(names)]
    atomic_write_text(os.path.join(folder, SUMS_FILE), "".join(lines))


def verify_folder(folder, required):
    """Check every file of ``folder/SHA256SUMS``, which must list each of ``required``.

    Raises PretrainedFileError naming the first file that is missing or whose SHA-256
    differs from the recorded one (a corrupted or edited install)."""
    sums = read_sums(folder)
    for name in required:
        if name not in sums:
            raise PretrainedFileError(f"{os.path.join(folder, SUMS_FILE)}: has no checksum for {name}")
    for name, expected in sums.items():
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            raise PretrainedFileError(f"{path}: missing; the installed npvae is incomplete "
                                      f"(reinstall it)")
        actual = sha256_of(path)
        if actual != expected:
            raise PretrainedFileError(f"{path}: checksum mismatch (SHA-256 {actual}, expected "
                                      f"{expected}): the file is corrupted or was changed; "
                                      f"reinstall npvae")
