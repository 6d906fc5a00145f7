"""Reports: self-contained HTML pages with image grids, tables and plots."""
from pixseq.report.grid import make_grid, upscale_nearest
from pixseq.report.html import Page

__all__ = ["Page", "make_grid", "upscale_nearest"]
