"""Pictures of a trained run: the paper's figures, the sweep figure, and the HTML report.

matplotlib is imported with this package: the command line imports it only when drawing.
"""
from .figures import (DEFAULT_CLASS, FIGURES, FigureSpec, caption, expected_figures,
                      make_all_figures)
from .report import write_report
from .run import Run

__all__ = ["make_all_figures", "write_report", "DEFAULT_CLASS", "expected_figures", "caption",
           "FIGURES", "FigureSpec", "Run"]
