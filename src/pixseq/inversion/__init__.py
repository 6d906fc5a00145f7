"""Generative compression by GAN inversion (the founding study's method, with honest bits).

* :mod:`pixseq.inversion.generators` — a GAN, or a VQGAN's decoder over its continuous
  latent, as a differentiable generator ``G(z)``; anything else is refused;
* :mod:`pixseq.inversion.optimize` — :func:`invert`: the study's SGD recipe or pixseq's Adam,
  restarts, per-chain schedules, a progress bar and a quality-against-steps log;
* :mod:`pixseq.inversion.quantize` — QSGD (stochastic) and uniform quantisation at 1..16 bits,
  and what the study's Elias code did;
* :mod:`pixseq.inversion.codec` — image -> version-2 ``.pxs`` file -> image
  (:mod:`pixseq.codec.latent` is the byte layout);
* :mod:`pixseq.inversion.study` — ``pixseq study``: the study's whole experiment.
"""
from pixseq.inversion.generators import GENERATOR_KINDS, LatentGenerator, as_generator
from pixseq.inversion.optimize import RECIPES, InversionConfig, InversionResult, invert, recipe
from pixseq.inversion.quantize import QUANTIZERS, Quantized, dequantize, quantize

__all__ = ["GENERATOR_KINDS", "InversionConfig", "InversionResult", "LatentGenerator", "QUANTIZERS", "Quantized",
           "RECIPES", "as_generator", "dequantize", "invert", "quantize", "recipe"]
