"""GAN inversion: the optimisers against torch.optim, quantisers against float64 formulas,
the version-2 latent container, the codec round trip, VQGAN decoders and refusals."""
from __future__ import annotations

import math
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from pixseq.codec import container
from pixseq.codec import latent as fmt
from pixseq.errors import PixseqError
from pixseq.inversion import as_generator, invert, recipe
from pixseq.inversion.codec import compress_invert, decode_quantized, decompress_latent
from pixseq.inversion.optimize import InversionConfig, _ChainOptimizer
from pixseq.inversion.quantize import dequantize, elias_gamma_bits, quantize, study_elias, symbol_range
from pixseq.io import to_uint8

sys.path.insert(0, str(Path(__file__).parent))
from _invert_models import lively_gan, target_of  # noqa: E402


# ------------------------------------------------------------------------------ optimisers
def _toy_problem(n: int = 3, d: int = 5, seed: int = 0):
    """A smooth non-convex per-row loss: ||sigmoid(W z) - t||^2 / k, rows independent."""
    g = torch.Generator().manual_seed(seed)
    W, t = torch.randn(12, d, generator=g, dtype=torch.float64), torch.rand(n, 12, generator=g, dtype=torch.float64)

    def loss(z, rows=slice(None)):  # (n, d) -> (n,)
        return (torch.sigmoid(z @ W.T) - t[rows]).pow(2).mean(1)

    return loss, torch.randn(n, d, generator=g, dtype=torch.float64)


def _reference_run(loss_fn, z0, row, opt_name, steps, lr, plateau):
    """One row optimised by torch.optim (the independent reference)."""
    z = z0[row:row + 1].clone().requires_grad_(True)
    opt = torch.optim.SGD([z], lr=lr, momentum=0.9) if opt_name == "sgd" else torch.optim.Adam([z], lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt) if plateau else None
    for _ in range(steps):
        opt.zero_grad()
        value = loss_fn(z, slice(row, row + 1)).sum()
        value.backward()
        opt.step()
        if sched is not None:
            sched.step(float(value.detach()))
    return z.detach()[0]


@pytest.mark.parametrize("opt_name, lr, plateau", [("sgd", 1.0, True), ("adam", 0.05, False), ("sgd", 0.3, False)])
def test_chain_optimizer_is_torch_optim_per_row(opt_name, lr, plateau):
    loss_fn, z0 = _toy_problem()
    steps = 120  # enough for the plateau rule to cut the rate several times
    cfg = InversionConfig(optimizer=opt_name, lr=lr, schedule="plateau" if plateau else "constant", steps=steps)
    z = z0.clone()
    opt = _ChainOptimizer(cfg, z)
    for _ in range(steps):
        zz = z.clone().requires_grad_(True)
        loss = loss_fn(zz)
        (grad,) = torch.autograd.grad(loss.sum(), zz)
        opt.step(z, grad, loss.detach())
    for row in range(z0.size(0)):
        # float64 both ways, same operations in the same order up to the fused updates:
        # agreement to 1e-9 means the same algorithm, a different rule would differ at 1e-2
        ref = _reference_run(loss_fn, z0, row, opt_name, steps, lr, plateau)
        assert torch.allclose(z[row], ref, atol=1e-9), (row, z[row], ref)
    if plateau:
        assert float(opt.lr.max()) < lr  # the schedule did cut the rate


def test_inversion_recovers_a_latent_and_logs_quality_against_steps():
    gan = lively_gan()
    _, x = target_of(gan)
    res = invert(as_generator(gan), x, config=recipe(steps=300, restarts=3, log_every=50))
    assert res.z.shape == (1, 8) and res.chains == 3
    assert float(res.psnr[0]) > 35  # the image is in the generator's range: inversion must find it
    steps = [h["step"] for h in res.history]
    assert steps == [0, 50, 100, 150, 200, 250, 300]
    psnrs = [h["psnr"] for h in res.history]
    assert psnrs == sorted(psnrs) and psnrs[-1] > psnrs[0] + 10  # best-so-far: never worse
    assert torch.allclose(res.images, gan(res.z), atol=1e-6)


def test_the_uniform_prior_keeps_z_in_its_box_and_other_sizes_are_resized(capsys):
    gan = lively_gan()
    x = torch.rand(1, 3, 40, 33)
    res = invert(as_generator(gan), x, config=recipe(steps=20, restarts=2, lr=5.0))
    assert res.targets.shape[-2:] == (28, 28)
    assert float(res.z.abs().max()) <= 1.0  # vanilla GAN: z ~ U[-1, 1]^nz
    assert "resized to 28x28" in capsys.readouterr().err


def test_conditional_generators_try_every_class_or_the_given_one():
    gan = lively_gan(num_classes=4, seed=3)
    _, x = target_of(gan, seed=2, label=2)
    gen = as_generator(gan)
    res = invert(gen, x, config=recipe(steps=150, restarts=2))
    assert res.chains == 8 and int(res.labels[0]) == 2  # its own class fits best
    fixed = invert(gen, x, labels=1, config=recipe(steps=5, restarts=2))
    assert fixed.chains == 2 and int(fixed.labels[0]) == 1
    with pytest.raises(PixseqError, match="class ids in 0..3"):
        invert(gen, x, labels=7, config=recipe(steps=1))


def test_a_non_generator_is_one_clear_line():
    sys.path.insert(0, str(Path(__file__).parent))
    from _codec_models import tiny_igpt

    with pytest.raises(PixseqError, match="an iGPT is not a generator"):
        as_generator(tiny_igpt())
    with pytest.raises(PixseqError, match="not a generator from a latent"):
        as_generator(torch.nn.Linear(2, 2))


# ------------------------------------------------------------------------------ quantisers
def test_qsgd_is_unbiased_and_on_its_levels():
    z = torch.randn(50, generator=torch.Generator().manual_seed(0))
    draws = torch.stack([quantize(z, 2, "qsgd", seed).latent() for seed in range(1500)]).double()
    s, norm = 3, float(z.norm())
    levels = draws * s / norm
    assert torch.allclose(levels, levels.round(), atol=1e-4) and levels.abs().max() <= s
    # E[Q(z)] = z (Alistarh et al., Lemma 3.1): each coordinate is a two-point variable with
    # spread at most norm/s, so the mean of 1500 draws is within 5 standard errors
    assert (draws.mean(0) - z.double()).abs().max() < 5 * (norm / s / 2) / math.sqrt(1500)
    q = quantize(z, 2, "qsgd", 7)
    assert np.array_equal(q.symbols, quantize(z, 2, "qsgd", 7).symbols)  # seeded: same file twice


def test_uniform_quantisation_matches_the_float64_formula():
    z = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(1))
    for bits in (1, 3, 8, 16):
        q = quantize(z, bits, "uniform")
        r, top = float(np.float32(z.abs().max())), 2 ** bits - 1
        zz = z.double().numpy()
        index = np.clip(np.round((zz + r) / (2 * r) * top), 0, top)
        assert np.array_equal(q.symbols, index) and q.symbols.shape == (3, 4, 5)
        expect = -r + index * 2 * r / top
        assert np.allclose(q.latent().numpy(), expect, atol=1e-6 * r)  # float32 of the float64 value
        assert np.abs(q.latent().numpy() - zz).max() <= r / top + 1e-6  # half a step at most


def _elias_gamma(n: int) -> str:
    """The Elias gamma codeword as a bit string: (len - 1) zeros, then n in binary."""
    b = bin(n)[2:]
    return "0" * (len(b) - 1) + b


def test_the_study_elias_code_keeps_only_signs_at_one_bit():
    assert list(elias_gamma_bits(np.arange(1, 40))) == [len(_elias_gamma(n)) for n in range(1, 40)]
    z = torch.randn(100, generator=torch.Generator().manual_seed(4))
    decoded, bits = study_elias(z, 1)
    norm = float(np.float32(z.norm()))
    assert torch.allclose(decoded, norm * torch.sign(z))  # level 0 read as 1: every |z_i| becomes ||z||
    assert bits == 32 + 100 + 100  # the norm, a sign bit and gamma(1) = "1" per coordinate
    decoded2, _ = study_elias(z, 2)
    assert (decoded2.abs() == norm / 3).float().mean() > 0.95  # 2 bits: still (almost) only signs
    honest = quantize(z, 1, "qsgd", 0).latent()
    assert (honest == 0).float().mean() > 0.7  # the true 1-bit QSGD levels are mostly 0


@pytest.mark.parametrize("bad", [0, 17, -1, 2.5, True])
def test_bits_outside_1_to_16_are_refused(bad):
    with pytest.raises(PixseqError, match="--bits must be an integer from 1 to 16"):
        quantize(torch.zeros(3), bad)


# ------------------------------------------------------------------------------ the container
def _header(**kw):
    base = dict(model_id=bytes(range(8)), height=28, width=30, latent_shape=(20,), quantizer="qsgd", bits=4,
                scale=3.5, mean=0.0, std=1.5, label=-1, model_path="", symbol_crc=0)
    return fmt.LatentHeader(**{**base, **kw})


@pytest.mark.parametrize("quantizer", ["qsgd", "uniform"])
@pytest.mark.parametrize("bits", [1, 2, 5, 8, 12, 16])
def test_symbols_round_trip_through_the_range_coder(quantizer, bits):
    z = torch.randn(4, 6, 5, generator=torch.Generator().manual_seed(bits))
    q = quantize(z, bits, quantizer, 3)
    lo, hi = symbol_range(quantizer, bits)
    payload, mean, std = fmt.encode_symbols(q.symbols, lo, hi)
    header = _header(latent_shape=(4, 6, 5), quantizer=quantizer, bits=bits, mean=mean, std=std,
                     symbol_crc=fmt.symbol_crc(q.symbols))
    data = fmt.pack_latent(header, payload)
    h2, p2 = fmt.unpack_latent(data)
    assert h2 == header and np.array_equal(fmt.decode_symbols(p2, h2), q.symbols)
    # the coder spends what its model says: the ideal -sum log2 p(symbol) under the clipped,
    # discretised Gaussian of the header (float64 erf, independent of constriction), plus
    # 24-bit probability rounding (under 1 %) and at most two termination words
    def cdf(x):
        return 0.5 * (1 + math.erf((x - mean) / (std * math.sqrt(2))))

    mass = cdf(hi + 0.5) - cdf(lo - 0.5)
    ideal = -sum(math.log2(max(cdf(k + 0.5) - cdf(k - 0.5), 2.0 ** -24 * mass) / mass)
                 for k in q.symbols.reshape(-1).tolist())
    assert 8 * len(payload) <= 1.01 * ideal + 64


def test_container_layout_versions_and_old_readers():
    data = fmt.pack_latent(_header(label=3, model_path="/m"), b"\1\2\3\4")
    assert data[:4] == container.MAGIC and data[4] == 2 and data[5] == fmt.KIND_LATENT
    assert len(data) == 37 + 1 + 3 + 4  # fixed 37 bytes + label + path (length byte + 2) + payload
    # a version-1 reader tests `version > 1` right after the magic (pixseq <= this format's
    # first release): the same bytes it checks, so it says "newer ... upgrade pixseq"
    assert data[4] > container.FORMAT_VERSION
    with pytest.raises(PixseqError, match="generator's latent"):
        container.unpack(data)  # the token reader of this pixseq names what the file is
    assert container.payload_kind(data) == "latent"
    with pytest.raises(PixseqError, match="payload kind 9, unknown"):
        container.payload_kind(data[:5] + b"\x09" + data[6:])


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d[:12] + bytes([d[12] ^ 1]) + d[13:], "header checksum"),
    (lambda d: d[:-2], "truncated"),
    (lambda d: d[:20], "truncated"),
    (lambda d: d + b"\0" * 4, "expected"),
    (lambda d: d[:-4] + bytes([d[-4] ^ 0x40]) + d[-3:], "checksum|invalid data"),
    (lambda d: d[:4] + b"\x03" + d[5:], "newer"),
    (lambda d: d[:5] + b"\x07" + d[6:], "payload kind 7"),
])
def test_damaged_latent_files_are_one_clear_line(mutate, message):
    z = torch.randn(20, generator=torch.Generator().manual_seed(0))
    q = quantize(z, 4)
    payload, mean, std = fmt.encode_symbols(q.symbols, *q.alphabet)
    data = fmt.pack_latent(_header(mean=mean, std=std, symbol_crc=fmt.symbol_crc(q.symbols)), payload)
    with pytest.raises(PixseqError, match=message) as err:
        bad = mutate(data)
        if container.payload_kind(bad) == "latent":
            header, p = fmt.unpack_latent(bad)
            fmt.decode_symbols(p, header)
    assert "\n" not in str(err.value)


def test_fields_are_validated_even_under_a_valid_checksum():
    data = bytearray(fmt.pack_latent(_header(), b"\0" * 4))
    data[7] = (1 << 5) | 20  # uniform at 21 bits: re-seal the header checksum
    end = len(data) - 4 - 4
    struct.pack_into("<I", data, end, zlib.crc32(bytes(data[:end])))
    with pytest.raises(PixseqError, match="quantiser or bit depth"):
        fmt.unpack_latent(bytes(data))


# ------------------------------------------------------------------------------ the codec
def test_compress_invert_round_trip_is_exact_and_checks_the_model():
    gan = lively_gan(seed=5)
    _, x = target_of(gan, seed=9)
    image = to_uint8(x[0])
    cfg = recipe(steps=120, restarts=2)
    data, stats, result = compress_invert(image, gan, bits=6, config=cfg, model_path="/models/g")
    out = decompress_latent(data, gan)
    q = quantize(result.z[0], 6, "qsgd", 0)
    assert np.array_equal(out, to_uint8(decode_quantized(q, gan)[0]))  # decode = G(z_hat), bit for bit
    assert stats.file_bytes == len(data) and stats.bpp == len(data) * 8 / (28 * 28)
    assert stats.psnr_float > 30 and stats.psnr_quantized > 20
    with pytest.raises(PixseqError, match="wrong model.*names /models/g"):
        decompress_latent(data, lively_gan(seed=6))


def test_conditional_files_record_their_class():
    gan = lively_gan(num_classes=3, seed=2)
    _, x = target_of(gan, seed=4, label=1)
    data, stats, _ = compress_invert(to_uint8(x[0]), gan, bits=8, config=recipe(steps=60, restarts=1), label=1)
    assert stats.label == 1 and fmt.unpack_latent(data)[0].label == 1
    assert decompress_latent(data, gan).shape == (28, 28, 3)


def test_a_vqgan_decoder_inverts_from_its_encoder_latent():
    sys.path.insert(0, str(Path(__file__).parent))
    from _codec_models import sample_image, tiny_taming

    taming = tiny_taming()
    image = sample_image(16, 20, seed=1)
    gen = as_generator(taming)
    assert gen.latent_shape(16, 20) == (8, 4, 5)
    res = invert(gen, torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255, config=recipe(steps=40))
    h = res.history
    assert h[-1]["loss"] < h[0]["loss"]  # refines what the encoder gives
    data, stats, _ = compress_invert(image, taming, bits=8, config=recipe(steps=10, restarts=1))
    assert fmt.unpack_latent(data)[0].latent_shape == (8, 4, 5)
    assert decompress_latent(data, taming).shape == (16, 20, 3)
