"""Reports: self-contained HTML pages with image grids, tables and plots."""
from pixseq.report.grid import legible_scale, make_grid, to_uint8_batch, upscale_nearest
from pixseq.report.html import Page

__all__ = ["Page", "legible_scale", "make_grid", "to_uint8_batch", "upscale_nearest"]
