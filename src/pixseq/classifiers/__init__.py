"""Image classifiers: the Vision Transformer (built from :mod:`pixseq.nn` blocks), its training
recipes, converters from timm / Hugging Face checkpoints, prediction and attention rollout."""
