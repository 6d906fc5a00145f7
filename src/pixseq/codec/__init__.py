"""The neural codec: ``.pxs`` files whose tokens are entropy-coded with a transformer prior.

See :mod:`pixseq.codec.codec` (compress / decompress, tiling, determinism),
:mod:`pixseq.codec.container` (the byte layout) and :mod:`pixseq.codec.entropy`
(range coding with constriction, probability quantisation).
"""
from pixseq.codec.codec import CodecStats, compress, compress_with_stats, decompress, read_header, reconstruct
from pixseq.codec.container import FORMAT_VERSION, Header, model_fingerprint
from pixseq.models.base import TOKEN_MODEL_KINDS

#: Model kinds the token codec can code with (a tokenizer + a prior over its tokens).
CODEC_MODEL_KINDS = TOKEN_MODEL_KINDS

__all__ = ["CODEC_MODEL_KINDS", "CodecStats", "FORMAT_VERSION", "Header", "compress", "compress_with_stats", "decompress",
           "model_fingerprint", "read_header", "reconstruct"]
