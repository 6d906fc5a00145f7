"""Sampling speed of the iGPT prior: KV cache vs full recompute vs ``transformers`` generate.

Issue 2 targets, at sequence length 1024 (a 32x32 image):
* pixseq's KV-cached sampling >= 20x the tokens/s of recomputing the whole prefix each step;
* >= 2x the tokens/s of ``transformers``' ``ImageGPTForCausalImageModeling.generate``
  (its KV cache, same weights, same batch, plain sampling at temperature 1).

Full recompute costs sum_t forward(t), far too long to run whole on a 2-core machine; it is
timed on every ``--stride``-th step (a forward over that many tokens, the exact work of
that step) and the total estimated as ``stride x`` their sum — stated in the table.

    python benchmarks/igpt_sampling.py [--preset s] [--batches 1,8] [--threads 1]
"""
from __future__ import annotations

import argparse

import torch

from igpt_common import hf_and_pixseq, machine_line, timeit
from pixseq.priors.gpt import GPT, gpt_config
from pixseq.priors.sampling import sample

KV = "pixseq KV cache (same arch as HF)"


def full_recompute_seconds(prior, batch: int, length: int, stride: int) -> tuple[float, float]:
    """Estimated (CPU, wall) seconds for full-recompute sampling of ``length`` tokens (see module doc)."""
    import time

    tokens = torch.randint(0, prior.config.vocab_size, (batch, length))
    cpu = wall = 0.0
    with torch.no_grad():
        for t in range(stride - 1, length, stride):
            c0, w0 = time.process_time(), time.perf_counter()
            prior(tokens[:, : t + 1])[:, t].float().softmax(-1).multinomial(1)
            cpu, wall = cpu + time.process_time() - c0, wall + time.perf_counter() - w0
    return cpu * stride, wall * stride


def hf_generate(hf, batch: int, length: int, **kw) -> torch.Tensor:
    sos = torch.full((batch, 1), hf.config.vocab_size - 1)
    # explicit mask: generate() would otherwise guess padding from the SOS id
    out = hf.generate(input_ids=sos, attention_mask=torch.ones_like(sos), max_length=length + 1,
                      min_length=length + 1, **kw)
    return out[:, 1:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="s")
    ap.add_argument("--side", type=int, default=32)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--stride", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf, model = hf_and_pixseq(args.preset, side=args.side)
    prior, L = model.prior, args.side ** 2
    default = GPT(gpt_config(args.preset, block_size=L)).eval()  # LayerNorm + GELU
    with torch.no_grad():  # same weights: greedy decoding must agree token for token
        same = torch.equal(sample(prior, 2, 64, greedy=True), hf_generate(hf, 2, 64, do_sample=False)[:, :64])
    rows = []
    for B in (int(b) for b in args.batches.split(",")):
        with torch.no_grad():
            secs = timeit({
                KV: lambda: sample(prior, B, L),
                "transformers generate (KV cache)": lambda: hf_generate(hf, B, L, do_sample=True, top_k=0),
                "pixseq KV cache, default arch (LayerNorm, GELU)": lambda: sample(default, B, L),
            }, repeats=args.repeats)
        secs["pixseq full recompute (est.)"] = full_recompute_seconds(prior, B, L, args.stride)
        for name, (cpu, wall) in secs.items():
            rows.append((B, name, cpu, wall, B * L / cpu, cpu / secs[KV][0]))
    lines = [
        f"### iGPT sampling, preset `{args.preset}` ({prior.num_params() / 1e6:.2f} M params), "
        f"{args.side}x{args.side} = {L} tokens per image",
        "",
        f"{machine_line()}; process CPU time, median of {args.repeats} interleaved runs; full recompute estimated "
        f"from every {args.stride}th step. Greedy tokens identical to transformers: {'yes' if same else 'NO'}.",
        "",
        "| batch | method | CPU s | wall s | tokens/CPU-s | pixseq KV cache is x faster |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {B} | {n} | {c:.2f} | {w:.2f} | {tps:,.0f} | {r:.1f}x |" for B, n, c, w, tps, r in rows]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
