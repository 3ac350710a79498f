"""Experiments: many runs at once. A sweep trains one run per point of a grid of settings,
each a task on a Dask cluster (or in this process), and sums the runs up over seeds.

    grid.py       the grid (SweepGrid), run names, one TrainConfig per point
    tasks.py      one task: train/resume/skip a run, then IWAE (what a worker executes)
    engine.py     where tasks run: the cluster, with Numba's cache warmed first
    aggregate.py  mean and sd over seeds per configuration; tables
    sweep.py      the driver: manifest, results table as runs finish, summary, figures
"""
from .aggregate import aggregate, summary_markdown, summary_text
from .grid import AXES, SweepGrid, grid_configs, run_name
from .sweep import RESULT_COLUMNS, run_sweep
from .tasks import IWAESettings, RunTask, run_task

__all__ = ["run_sweep", "SweepGrid", "grid_configs", "run_name", "AXES", "RunTask", "run_task",
           "IWAESettings", "aggregate", "summary_text", "summary_markdown", "RESULT_COLUMNS"]
