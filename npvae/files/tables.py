"""Result tables: one CSV writer and one plain-text table format for every result npvae prints."""
import csv
import os
import io


def _cell(value, digits):
    return f"{value:.{digits}f}" if isinstance(value, float) else value


def csv_text(rows, columns, digits=6):
    """Rows (dicts) as CSV text, floats with ``digits`` decimals; missing cells stay empty."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v, digits) for k, v in row.items()})
    return out.getvalue()


def read_csv(path, numeric=True):
    """A CSV file as a list of dicts; with ``numeric`` every cell that parses as a number is one
    (integers as int). Raises FileNotFoundError naming the file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: _number(v) for k, v in row.items()} for row in rows] if numeric else rows


def _number(text):
    for kind in (int, float):
        try:
            return kind(text)
        except (TypeError, ValueError):
            pass
    return text


def text_table(header, rows, align=None):
    """A plain-text table: columns as wide as their widest cell, numbers right-aligned."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    align = align or ["<"] + [">"] * (len(header) - 1)
    lines = ["  ".join(f"{c:{a}{w}}" for c, a, w in zip(row, align, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
