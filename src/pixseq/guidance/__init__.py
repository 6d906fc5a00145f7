"""Guides: CLIP (open_clip) and LiT models that embed images and texts in one space, and
VQGAN-CLIP, which optimises a VQGAN's latent until a guide judges it close to a prompt."""
