"""Many finished runs: the grid of a sweep, its runs on this machine, and their table and
figures.

Modules: `grid` (sweep files and the grid of run options), `plan` (each grid point's
results name and state), `launch` (running the plan as `run.py` processes), `summary`
(one row per run, means over seeds), `plots` (the figures) and `report` (a report of a
results directory, or of one run).
"""
