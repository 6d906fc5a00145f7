"""Converters from foreign checkpoint formats to pixseq models (explicit key maps, strict shapes)."""
