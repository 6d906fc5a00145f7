"""Every model stored in the zoo loads, matches its checksums and still reaches its card's
regression check (:mod:`pixseq.zoo.quality`: one number on a small held-out sample, with the
tolerance justified there). A guard against later code changes that quietly make a shipped
model worse."""
from __future__ import annotations

import pytest

from pixseq import zoo
from pixseq.zoo.quality import entry_check, run_check

STORED = [name for name, e in zoo.entries().items() if e.stored]


def test_the_zoo_holds_the_issue_s_models():
    # issue 24's list: an iGPT at 28x28, a VQGAN with a class-conditional prior, a photo codec
    # model, the GAN and conditional GAN, the ViT classifier and the LiT guide
    kinds = {zoo.get(n).kind for n in STORED}
    assert {"igpt", "vqgan", "taming", "gan", "vit", "lit"} <= kinds


def test_zoo_sizes_are_within_limits():
    from pixseq.zoo.build import MAX_MODEL_BYTES, MAX_TOTAL_BYTES

    sizes = {n: zoo.size_bytes(n) for n in STORED}
    assert all(0 < s <= MAX_MODEL_BYTES for s in sizes.values()), sizes
    assert sum(sizes.values()) <= MAX_TOTAL_BYTES


@pytest.mark.slow
@pytest.mark.parametrize("name", STORED)
def test_zoo_model_still_reaches_its_card(name):
    check = entry_check(zoo.get(name))
    recorded, measured = run_check(name)
    assert recorded == check
    assert check.passed(measured), (f"{name}: {check.metric} {measured:.4f} on {check.images} images of "
                                    f"{check.data}; its card records {check.value:.4f} ± {check.tolerance:.4f}")
