"""Shared neural-network blocks (attention, MLP, transformer block), used by every prior and the ViT."""
from pixseq.nn.transformer import MLP, Block, CausalSelfAttention, DropPath, KVCache, RMSNorm, SelfAttention, make_norm

__all__ = ["MLP", "Block", "CausalSelfAttention", "DropPath", "KVCache", "RMSNorm", "SelfAttention", "make_norm"]
