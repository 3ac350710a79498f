"""Files: atomic writes and result tables (the bottom of the package, beside the kernels)."""
from .atomic import atomic_savez, atomic_write, atomic_write_bytes, atomic_write_text
from .tables import csv_text, read_csv, text_table

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_bytes", "atomic_savez", "csv_text",
           "read_csv", "text_table"]
