"""GPT prior, KV-cached sampling and the iGPT model (tiny configs, CPU, seconds)."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from pixseq.checkpoint import from_pretrained, save_pretrained
from pixseq.config import from_dict
from pixseq.errors import PixseqError
from pixseq.models.igpt import IGPT, IGPTConfig, IGPTTask, IGPTTokenDataset
from pixseq.priors.gpt import GPT, GPT_PRESETS, GPTConfig, gpt_config
from pixseq.priors.sampling import IncrementalDecoder, choose, filter_logits, sample, sample_full_recompute


def tiny(cond: int = 0, **kw) -> GPT:
    cfg = GPTConfig(vocab_size=11, block_size=12, n_layer=2, n_head=2, n_embd=16,
                    cond_vocab_size=5 if cond else 0, cond_len=cond, **kw)
    return GPT(cfg).eval()


def reference_logits(model: GPT, tokens: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
    """The GPT written out naively in float64 from the paper's equations (explicit mask,
    explicit softmax, LayerNorm formula), reading the model's weights."""
    W = {k: v.double() for k, v in model.state_dict().items()}
    cfg = model.config
    C, nh = cfg.n_embd, cfg.n_head

    def ln(x, p):
        mu, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
        return (x - mu) / torch.sqrt(var + 1e-5) * W[p + ".weight"] + W[p + ".bias"]

    def lin(x, p):
        return x @ W[p + ".weight"].T + W[p + ".bias"]

    seq = [W["sos"][None, None].expand(tokens.size(0), 1, C)]
    if cond is not None:
        seq.insert(0, W["cond_emb.weight"][cond])
    seq.append(W["wte.weight"][tokens[:, :-1]])
    x = torch.cat(seq, 1)
    L = x.size(1)
    x = x + W["wpe.weight"][:L]
    mask = torch.tril(torch.ones(L, L, dtype=torch.bool))
    for i in range(cfg.n_layer):
        p = f"h.{i}."
        q, k, v = lin(ln(x, p + "ln_1"), p + "attn.c_attn").split(C, -1)
        heads = []
        for h in range(nh):
            sl = slice(h * C // nh, (h + 1) * C // nh)
            s = q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(C // nh)
            heads.append(s.masked_fill(~mask, -math.inf).softmax(-1) @ v[..., sl])
        x = x + lin(torch.cat(heads, -1), p + "attn.c_proj")
        hdn = lin(ln(x, p + "ln_2"), p + "mlp.c_fc")
        x = x + lin(0.5 * hdn * (1 + torch.erf(hdn / math.sqrt(2))), p + "mlp.c_proj")
    x = ln(x, "ln_f")
    return (x @ W["lm_head.weight"].T)[:, cfg.cond_len:]


@pytest.mark.parametrize("cond_len", [0, 2])
def test_forward_matches_float64_reference(cond_len):
    model = tiny(cond_len)
    tokens = torch.randint(0, 11, (3, 12))
    cond = torch.randint(0, 5, (3, cond_len)) if cond_len else None
    got = model(tokens, cond)
    assert got.shape == (3, 12, 11)
    # float32 vs float64 through 2 tiny layers: rounding error ~1e-7 relative, logits O(1)
    torch.testing.assert_close(got.double(), reference_logits(model, tokens, cond), atol=1e-5, rtol=1e-5)


def test_causal_and_shifted():
    model = tiny()
    tokens = torch.randint(0, 11, (2, 12))
    base = model(tokens)
    changed = tokens.clone()
    changed[:, 5] = (changed[:, 5] + 1) % 11
    out = model(changed)
    # logits[:, t] predicts token t from tokens < t: positions <= 5 must not see the change
    torch.testing.assert_close(out[:, :6], base[:, :6], rtol=0, atol=0)
    assert (out[:, 6:] - base[:, 6:]).abs().max() > 1e-4


def test_conditioning_is_used_and_required():
    model = tiny(cond=1)
    tokens = torch.randint(0, 11, (2, 12))
    a = model(tokens, torch.tensor([[0], [0]]))
    b = model(tokens, torch.tensor([[1], [1]]))
    assert (a - b).abs().max() > 1e-4
    with pytest.raises(ValueError, match="cond"):
        model(tokens)
    with pytest.raises(ValueError, match="unconditional"):
        tiny()(tokens, torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="T<=12"):
        tiny()(torch.zeros(1, 13, dtype=torch.long))


@pytest.mark.parametrize("tokens, cond, pattern", [
    ([[0, 11]], [[1]], r"tokens hold ids 0\.\.11, outside this prior's 0\.\.10"),  # last id unused as input, still checked
    ([[-1, 3]], [[1]], r"tokens hold ids -1\.\.3"),
    ([[0, 3]], [[5]], r"cond hold ids 5\.\.5, outside this prior's 0\.\.4"),
])
def test_forward_names_out_of_vocabulary_ids(tokens, cond, pattern):
    """On CPU an id outside the vocabulary is one ValueError (was a bare IndexError from the
    embedding lookup; for the last target token, which is never embedded, forward raised nothing)."""
    model = tiny(cond=1)
    for fn in (model, model.loss, model.features):
        with pytest.raises(ValueError, match=pattern):
            fn(torch.tensor(tokens), torch.tensor(cond))


def test_loss_features_and_training():
    model = tiny(cond=1).train()
    tokens = torch.randint(0, 11, (4, 12))
    cond = torch.randint(0, 5, (4, 1))
    manual = -model(tokens, cond).log_softmax(-1).gather(-1, tokens[..., None]).mean()
    torch.testing.assert_close(model.loss(tokens, cond), manual)
    feats = model.features(tokens, cond)
    assert len(feats) == model.config.n_layer + 1 and all(f.shape == (4, 12, 16) for f in feats)
    torch.testing.assert_close(model.lm_head(feats[-1]), model(tokens, cond))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = model.loss(tokens, cond).item()
    for _ in range(30):  # memorise 4 sequences
        opt.zero_grad()
        model.loss(tokens, cond).backward()
        opt.step()
    assert model.loss(tokens, cond).item() < 0.5 * first


def test_init_presets_and_tying():
    model = GPT(gpt_config("s"))
    assert set(GPT_PRESETS) == {"s", "m", "l"}
    # parameter counts documented in the gpt.py docstring (vocab 512, 32x32)
    documented = {"s": 1.06e6, "m": 6.84e6, "l": 38.9e6}
    for name, n in documented.items():
        assert abs(GPT(gpt_config(name)).num_params() - n) / n < 0.01
    std_fc = model.h[0].mlp.c_fc.weight.std().item()
    std_proj = model.h[0].mlp.c_proj.weight.std().item()
    assert 0.018 < std_fc < 0.022 and abs(std_proj - 0.02 / math.sqrt(8)) < 0.002
    tied = GPT(gpt_config("s", tie_weights=True))
    assert tied.lm_head.weight is tied.wte.weight
    assert tied.num_params() == model.num_params() - 512 * 128
    with pytest.raises(ValueError):
        GPTConfig(n_embd=10, n_head=3)



@pytest.mark.parametrize("bad", [dict(dropout=1.5), dict(dropout=float("nan")), dict(norm_eps=-1e-5),
                                 dict(cond_len=-1, cond_vocab_size=-1)])
def test_gpt_config_rejects_bad_values_from_config_json(bad):
    # these used to build (NaN dropout, negative eps: NaN logits) or fail deep inside torch;
    # from a config.json they are one PixseqError
    with pytest.raises(PixseqError, match="invalid GPTConfig"):
        from_dict(GPTConfig, {**dataclasses.asdict(gpt_config("s", n_layer=1)), **bad})

@pytest.mark.parametrize("cond_len,batch,arch", [
    (0, 3, {}), (1, 3, {}), (0, 1, {}),  # batch 1: the matrix-vector decoding path
    (0, 3, dict(norm="rmsnorm", activation="quick_gelu")), (1, 1, dict(norm="rmsnorm", activation="quick_gelu")),
    (0, 2, dict(activation="gelu_tanh", bias=False)),
])
def test_kv_cache_matches_full_forward(cond_len, batch, arch):
    model = tiny(cond_len, **arch)
    with torch.no_grad():  # non-trivial norm weights and biases, so that their handling is tested
        for n, p in model.named_parameters():
            if n.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight", "bias")):
                p.add_(torch.randn_like(p) * 0.3)
    tokens = torch.randint(0, 11, (batch, 12))
    cond = torch.randint(0, 5, (batch, cond_len)) if cond_len else None
    full = model(tokens, cond)
    dec = IncrementalDecoder(model, batch, cond)
    steps = []
    for t in range(12):
        steps.append(dec.next_logits())
        dec.push(tokens[:, t])
    # same math, different reduction order (1 query vs T queries) and decoding plan
    # (RMS norm as a LayerNorm of [x, -x], quick-GELU as a rescaled SiLU): float32 rounding only
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)
    if batch != 3:
        return
    chunked = IncrementalDecoder(model, 3, cond)
    chunked.push(tokens[:, :4])
    torch.testing.assert_close(chunked.next_logits(), full[:, 4], atol=1e-5, rtol=1e-5)
    chunked.push(tokens[:, 4:9])  # a multi-token chunk after a non-empty cache (explicit mask)
    torch.testing.assert_close(chunked.next_logits(), full[:, 9], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError):
        chunked.push(tokens[:, :4])  # 13 > block_size


def test_decoder_is_bit_deterministic():
    model = tiny()
    tokens = torch.randint(0, 11, (2, 12))
    runs = []
    for _ in range(2):
        dec = IncrementalDecoder(model, 2)
        out = []
        for t in range(12):
            out.append(dec.next_logits().clone())
            dec.push(tokens[:, t])
        runs.append(torch.stack(out))
    assert torch.equal(runs[0], runs[1])


def test_sample_cached_equals_full_recompute():
    model = tiny(cond=1)
    cond = torch.tensor([[0], [3], [4]])
    prefix = torch.randint(0, 11, (3, 4))
    greedy = sample(model, 3, 12, cond=cond, prefix=prefix, greedy=True)
    assert torch.equal(greedy, sample_full_recompute(model, 3, 12, cond=cond, prefix=prefix, greedy=True))
    assert torch.equal(greedy[:, :4], prefix)
    kw = dict(cond=cond, temperature=0.9, top_k=6, top_p=0.95)
    a = sample(model, 3, 12, generator=torch.Generator().manual_seed(7), **kw)
    b = sample_full_recompute(model, 3, 12, generator=torch.Generator().manual_seed(7), **kw)
    assert torch.equal(a, b) and a.dtype == torch.long and a.max() < 11


def test_sample_distribution_matches_softmax():
    model = tiny()
    p = model(torch.zeros(1, 1, dtype=torch.long))[0, 0].softmax(-1)
    draws = sample(model, 20000, 1, generator=torch.Generator().manual_seed(0))[:, 0]
    freq = torch.bincount(draws, minlength=11).double() / 20000
    # binomial std <= sqrt(.25/20000) = 0.0035; 0.015 is > 4 sigma
    assert (freq - p.double()).abs().max() < 0.015


def test_filter_logits_against_bruteforce():
    logits = torch.randn(5, 30, generator=torch.Generator().manual_seed(1))
    k = filter_logits(logits, top_k=4)
    assert ((k > -math.inf).sum(-1) == 4).all()
    top_p = 0.7
    kept = filter_logits(logits, top_p=top_p) > -math.inf
    for row, keep in zip(logits, kept):
        probs = row.double().softmax(-1).numpy()
        order = np.argsort(-probs)
        n = int(np.searchsorted(np.cumsum(probs[order]), top_p) + 1)  # smallest set with mass >= p
        assert set(np.flatnonzero(keep.numpy())) == set(order[:n])
    scaled = filter_logits(logits, temperature=0.5)
    torch.testing.assert_close(scaled, logits * 2)
    with pytest.raises(ValueError):
        filter_logits(logits, temperature=0.0)



@pytest.mark.parametrize("kwargs, pattern", [
    (dict(num=0), "num must be an integer >= 1"),  # was a reshape RuntimeError
    (dict(num=2.0), "num must be"),
    (dict(length=13), "length must be in 1..12"),
    (dict(temperature=float("nan")), "temperature"),  # was an IndexError from the embedding
    (dict(temperature=float("inf")), "temperature"),
    (dict(top_k=2.5), "top_k"),
    (dict(top_p=1.5), "top_p"),  # was silently the same as top_p=1
    (dict(top_p=float("nan")), "top_p"),
    (dict(cond=None), "this prior is conditional"),
    (dict(cond=torch.tensor([5, 0])), r"cond holds ids outside 0..4"),  # was an IndexError
    (dict(cond=torch.tensor([1.0, 0.0])), "cond must hold integer"),
    (dict(cond=torch.tensor([1, 0, 2])), r"cond must be \(num=2, 1\)"),
    (dict(prefix=torch.tensor([[11], [0]])), r"prefix holds ids outside 0..10"),  # was an IndexError
    (dict(prefix=torch.tensor([[1.7], [0.2]])), "prefix must hold integer"),  # was truncated to 1, 0
])
def test_sample_checks_its_arguments_first(kwargs, pattern):
    model = tiny(cond=1)
    args = {"num": 2, "length": 5, "cond": torch.tensor([1, 0]), **kwargs}
    for fn in (sample, sample_full_recompute):
        with pytest.raises(PixseqError, match=pattern):
            fn(model, **args)


def test_sample_accepts_lists_and_reports_nan_logits():
    model = tiny(cond=1)
    out = sample(model, 2, 5, cond=[1, 0], prefix=[[3], [4]], top_k=100)  # top_k > vocab: no filtering
    assert out.shape == (2, 5) and out[:, 0].tolist() == [3, 4]
    with torch.no_grad():
        model.lm_head.weight.fill_(float("nan"))
    for fn in (sample, sample_full_recompute):  # the draw used to return id V: an IndexError a step later
        with pytest.raises(PixseqError, match="non-finite logits"):
            fn(model, 2, 5, cond=[1, 0])
        with pytest.raises(PixseqError, match="non-finite logits"):  # argmax used to pick NaN's index 0
            fn(model, 2, 5, cond=[1, 0], greedy=True)


def test_choose_greedy_marks_rows_without_a_finite_maximum():
    logits = torch.tensor([[0.0, 2.0, 1.0], [float("nan"), 5.0, 0.0], [-math.inf] * 3, [0.0, math.inf, 1.0]])
    assert choose(logits, greedy=True).tolist() == [1, 3, 3, 3]  # 3 = V: "no token", reported by sample()

# ---------------------------------------------------------------------- iGPT model

def _igpt(num_classes: int = 0) -> tuple[IGPT, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 6, 6, 3), dtype=np.uint8)
    cfg = IGPTConfig(palette_size=8, image_size=6, gpt=gpt_config("s", n_layer=2, n_embd=16, n_head=2),
                     num_classes=num_classes)
    return IGPT.from_data(images, cfg, seed=0), images


def test_igpt_config_resolves_gpt_and_round_trips(tmp_path):
    model, _ = _igpt(num_classes=3)
    g = model.prior.config
    assert (g.vocab_size, g.block_size, g.cond_vocab_size, g.cond_len) == (8, 36, 3, 1)
    assert model.image_size == (6, 6) and model.tokenizer.vocab_size == 8
    save_pretrained(model, tmp_path / "m")
    loaded = from_pretrained(tmp_path / "m", expected_kind="igpt")
    assert torch.equal(loaded.tokenizer.palette, model.tokenizer.palette)
    tokens = torch.randint(0, 8, (2, 36))
    cond = torch.tensor([[1], [2]])
    assert torch.equal(loaded.prior(tokens, cond), model.eval().prior(tokens, cond))


def test_igpt_task_dataset_and_generation():
    model, images = _igpt(num_classes=3)
    labels = np.arange(12) % 3
    ds = IGPTTokenDataset(model, images, labels)
    item = ds[0]
    assert item["tokens"].shape == (36,) and item["tokens"].dtype == torch.long and item["label"].shape == ()
    batch = default_collate([ds[i] for i in range(4)])
    task = IGPTTask(model)
    loss, logs = task.training_step(batch, 0, "model")
    # an untrained prior is near uniform over 8 colours: ln 8 = 2.08 nats
    assert abs(loss.item() - math.log(8)) < 0.3 and abs(logs["bits_per_pixel"] - loss.item() / math.log(2)) < 1e-6
    assert task.parts() == ["model"] and task.count_tokens(batch) == 4 * 36
    # the blocks run on 1 class + 36 pixel positions; 6N + 6LTC per position (PaLM, causal half)
    n = sum(p.numel() for b in model.prior.h for p in b.parameters() if p.dim() == 2) + 8 * 16
    assert task.count_flops(batch) == pytest.approx(4 * 37 * (6 * n + 6 * 2 * 37 * 16))
    assert {id(p) for p in task.parameters("model")} == {id(p) for p in model.prior.parameters()}
    assert task.sample_images(batch).shape == (4, 3, 6, 6)
    with pytest.raises(PixseqError):
        IGPTTokenDataset(model, images, labels + 5)


def test_igpt_trains_compiled_like_eager(tmp_path):
    """``compile=True`` compiles the prior (what training_step calls, not the IGPT wrapper);
    the losses are eager's up to float32 rounding: inductor fuses the norms and GELU and may
    sum in another order (on this CPU they came out bitwise equal; rel. 1e-5 allows ~100 ulp)."""
    from pixseq.train import TrainConfig, Trainer

    losses = {}
    for compiled in (False, True):
        model, images = _igpt(num_classes=3)
        task = IGPTTask(model)
        assert task.compile_targets() == [model.prior]
        cfg = TrainConfig(steps=3, batch_size=4, lr=1e-2, warmup_steps=0, log_every=0, ckpt_every=0,
                          compile=compiled)
        history = Trainer(task, IGPTTokenDataset(model, images, np.arange(12) % 3), cfg,
                          tmp_path / str(compiled)).fit()
        losses[compiled] = [r["loss"] for r in history]
        assert all(r["tflops_per_s"] > 0 and r["tokens_per_s"] > 0 for r in history)
    assert losses[True] == pytest.approx(losses[False], rel=1e-5)


def test_igpt_complete_keeps_rows():
    model, images = _igpt()
    x = torch.from_numpy(images[:2]).permute(0, 3, 1, 2).float() / 255
    out = model.eval().complete(x, keep_rows=2, num=3, generator=torch.Generator().manual_seed(0))
    assert out.shape == (6, 3, 6, 6)
    kept = model.tokenizer.decode(model.tokenizer.encode(x))[:, :, :2]
    torch.testing.assert_close(out[::3, :, :2], kept, rtol=0, atol=0)
    assert out.min() >= 0 and out.max() <= 1
    with pytest.raises(PixseqError):
        model.generate(1, labels=[0])  # unconditional model given a class
    for bad in (4.5, 6, -1):  # 4.5 was a TypeError from slicing
        with pytest.raises(PixseqError, match="keep_rows must be an integer in 0..5"):
            model.complete(x, keep_rows=bad)


def test_igpt_complete_labels_one_for_all_per_image_or_per_completion():
    """``complete(labels=c)`` for several images was refused as "class must be in 0..K-1" (the
    one class was repeated ``num`` times for ``B * num`` outputs); it means c for every output,
    as in ``generate``. A wrong count is named as a count, not as an out-of-range class."""
    model, images = _igpt(num_classes=3)
    model.eval()
    x = torch.from_numpy(images[:2]).permute(0, 3, 1, 2).float() / 255

    def run(labels):
        return model.complete(x, keep_rows=2, num=2, labels=labels, generator=torch.Generator().manual_seed(0))

    one = run(1)
    assert one.shape == (4, 3, 6, 6)
    assert torch.equal(one, run([1, 1])) and torch.equal(one, run([1, 1, 1, 1]))  # per image / per output
    assert torch.equal(run([2, 0]), run([2, 2, 0, 0]))  # image i's class is used for its completions
    with pytest.raises(PixseqError, match="one per image, got 3 classes"):
        run([0, 1, 2])
    with pytest.raises(PixseqError, match=r"class must be in 0\.\.2"):
        model.generate(2, labels=[0, 3])


def test_igpt_pooled_features_refuse_labels_of_an_unconditional_model():
    """They were ignored without a word (generate refuses them)."""
    model, images = _igpt()
    tokens = model.encode_uint8(images[:2])
    feats = model.eval().pooled_features(tokens)
    assert len(feats) == 3 and feats[0].shape == (2, 16)
    with pytest.raises(PixseqError, match="unconditional"):
        model.pooled_features(tokens, labels=[0, 1])


def test_a_draw_never_returns_a_filtered_token_even_from_a_rounded_cdf():
    """On a GPU the cdf is a parallel scan, not exactly monotone: a draw landing in a rounding
    gap could pick a token top-k / top-p removed. _never_filtered swaps such a pick for the
    row's most likely token; real picks and the NaN marker (index V) are kept."""
    from pixseq.priors.sampling import _never_filtered

    probs = torch.tensor([[0.0, 0.7, 0.0, 0.3], [0.5, 0.0, 0.5, 0.0], [float("nan")] * 4])
    index = torch.tensor([2, 0, 4])  # row 0 picked a zero-probability token; row 2 is a NaN row
    assert _never_filtered(index, probs).tolist() == [1, 0, 4]
    index = torch.tensor([3, 2, 4])
    assert _never_filtered(index, probs).tolist() == [3, 2, 4]


def test_generator_on_another_gpu_is_named():
    """A cuda:0 generator for a prior on cuda:1 passed the device-type check and failed in
    torch.rand mid-sampling; the index is compared when both have one."""
    from types import SimpleNamespace

    from pixseq.priors.sampling import check_generator

    check_generator(SimpleNamespace(device="cuda:1"), torch.device("cuda:1"))
    check_generator(SimpleNamespace(device="cuda:0"), torch.device("cuda"))  # no index: 'the current one'
    with pytest.raises(PixseqError, match=r"generator is on cuda:0, the prior on cuda:1.*device='cuda:1'"):
        check_generator(SimpleNamespace(device="cuda:0"), torch.device("cuda:1"))
    with pytest.raises(PixseqError, match="device='cpu'"):
        check_generator(SimpleNamespace(device="cuda:0"), torch.device("cpu"))
