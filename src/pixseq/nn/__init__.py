"""Shared neural-network blocks (attention, MLP, transformer block), used by every prior."""
from pixseq.nn.transformer import MLP, Block, CausalSelfAttention, KVCache, RMSNorm, make_norm

__all__ = ["MLP", "Block", "CausalSelfAttention", "KVCache", "RMSNorm", "make_norm"]
