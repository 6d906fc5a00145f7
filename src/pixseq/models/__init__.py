"""Composite token-image models: a tokenizer plus a prior, saved as one model directory."""
