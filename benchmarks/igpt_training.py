"""Training throughput of the iGPT prior vs ``transformers`` ImageGPT, and FLOP/s vs matmul peak.

Issue 2 targets: >= 4x the training tokens/s of ``transformers``' ImageGPT on the same
config and batch, each at its best settings; achieved FLOP/s >= 40 % of a bf16 matmul peak
measured in the same run.

One training step = forward, cross-entropy over all 1024 pixels, backward, fused AdamW update.
Both models are the same function with the same weights (pixseq's is converted from the
HF one: RMS-style norm, quick-GELU); a third row is pixseq's default architecture
(LayerNorm, GELU). Each contender runs in fp32 and, when ``--bf16`` is given or this CPU's
bf16 matmuls are not much slower than fp32, also under bf16 autocast; the best is compared.

On CPU, times are *process CPU seconds* with one thread (``--threads 1``): on a machine
shared with other jobs, wall time mostly measures the neighbours. With ``--device cuda``
times are GPU wall seconds (synchronised), fp32 runs may use TF32 for both contenders, bf16
autocast is always tried, and the peak is a bf16 (and TF32) matmul of 8192^2 on that GPU;
``--compile`` times both contenders under ``torch.compile`` too (the best is compared).
(The CUDA path was written on a machine without a GPU: first run it with ``--steps 2``.) FLOPs per token follow PaLM (appendix
B) with causal attention counted as half: ``6 N + 6 L T C`` (see ``GPT.flops_per_token``),
the same count for both implementations (HF computes the full masked T x T attention, i.e.
more raw FLOPs, but the useful work is identical).

    python benchmarks/igpt_training.py [--preset s] [--batch 4] [--steps 2] [--threads 1]
    python benchmarks/igpt_training.py --device cuda --preset l --batch 32 --steps 10 [--compile]
"""
from __future__ import annotations

import argparse
import contextlib
import time

import torch
import torch.nn.functional as F

from igpt_common import hf_and_pixseq, machine_line, matmul_peak
from pixseq.priors.gpt import GPT, gpt_config


def step_fn(kind: str, model: torch.nn.Module, tokens: torch.Tensor, bf16: bool, compiled: bool = False):
    """A closure doing one optimiser step of ``model`` on ``tokens`` (on their device)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)  # the fastest AdamW, for both (as pixseq's Trainer)
    hf_ids = None
    if kind == "hf":  # HF's input: [SOS, x_0 .. x_{T-2}], SOS = vocab_size - 1
        sos = torch.full((tokens.size(0), 1), model.config.vocab_size - 1, device=tokens.device)
        hf_ids = torch.cat([sos, tokens[:, :-1]], 1)
    if kind == "hf":
        def forward_loss() -> torch.Tensor:
            logits = model(hf_ids).logits  # (B, T, V): position t predicts tokens[:, t]
            return F.cross_entropy(logits.float().flatten(0, 1), tokens.flatten())
    else:
        def forward_loss() -> torch.Tensor:
            return model.loss(tokens)
    if compiled:
        forward_loss = torch.compile(forward_loss)

    def step() -> None:
        ctx = torch.autocast(tokens.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with ctx:
            loss = forward_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def cpu_seconds(fn, steps: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per call, after one warm-up call."""
    fn()
    c, w = time.process_time(), time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.process_time() - c) / steps, (time.perf_counter() - w) / steps


def cuda_seconds(fn, steps: int) -> tuple[float, float]:
    """(GPU seconds, wall seconds) per call, after two warm-up calls (compilation, autotuning)."""
    fn()
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    w = time.perf_counter()
    start.record()
    for _ in range(steps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1e3 / steps, (time.perf_counter() - w) / steps


def cuda_matmul_peak(dtype: torch.dtype, n: int = 8192, repeats: int = 10) -> float:
    """FLOP/s of an ``n x n @ n x n`` matmul in ``dtype`` on the GPU (best of ``repeats``)."""
    a, b = (torch.randn(n, n, device="cuda", dtype=dtype) for _ in range(2))
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a @ b
        end.record()
        torch.cuda.synchronize()
        best = min(best, start.elapsed_time(end) / 1e3)
    return 2 * n ** 3 / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="s")
    ap.add_argument("--side", type=int, default=32)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--bf16", action="store_true", help="time bf16 autocast even when bf16 matmuls are slow here")
    ap.add_argument("--compile", action="store_true", help="also time both contenders under torch.compile")
    args = ap.parse_args()
    cuda = args.device == "cuda"
    if cuda:
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA GPU here")
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32's best setting, for both contenders
        torch.backends.cudnn.allow_tf32 = True
        peak32, peak16 = cuda_matmul_peak(torch.float32), cuda_matmul_peak(torch.bfloat16)
        try_bf16 = True
    else:
        torch.set_num_threads(args.threads)
        peak32, peak16 = matmul_peak(torch.float32), matmul_peak(torch.bfloat16, n=512, repeats=2)
        peak32 = max(peak32, matmul_peak(torch.float32, n=2048, repeats=3))
        try_bf16 = args.bf16 or peak16 > 0.5 * peak32
    device = torch.device(args.device)
    hf, converted = hf_and_pixseq(args.preset, side=args.side)
    hf.train()
    default = GPT(gpt_config(args.preset, block_size=args.side ** 2)).train()
    T = args.side ** 2
    tokens = torch.randint(0, 512, (args.batch, T), generator=torch.Generator().manual_seed(0)).to(device)
    flops = converted.prior.flops_per_token(T) * args.batch * T  # per step, same for all three
    contenders = {
        "transformers ImageGPT": ("hf", hf.to(device)),
        "pixseq GPT (same arch)": ("px", converted.prior.train().to(device)),
        "pixseq GPT (default arch)": ("px", default.to(device)),
    }
    timer = cuda_seconds if cuda else cpu_seconds
    results, failed = {}, []
    for name, (kind, model) in contenders.items():
        for compiled in ([False, True] if args.compile else [False]):
            for bf16 in ([False, True] if try_bf16 else [False]):
                try:
                    results[(name, bf16, compiled)] = timer(step_fn(kind, model, tokens, bf16, compiled), args.steps)
                except torch.cuda.OutOfMemoryError:  # e.g. HF's (B, H, T, T) attention at a large batch
                    failed.append(f"{name}, {'bf16' if bf16 else 'fp32'}, compiled={compiled}: out of GPU memory")
                    model.zero_grad(set_to_none=True)
                    torch.cuda.empty_cache()
    best = {name: min(v[0] for (n, *_), v in results.items() if n == name) for name in contenders
            if any(n == name for n, *_ in results)}
    if "transformers ImageGPT" not in best:
        raise SystemExit(f"transformers ImageGPT did not run ({'; '.join(failed)}): lower --batch")
    ref = best["transformers ImageGPT"]
    clock = "GPU s/step" if cuda else "CPU s/step"
    peak_note = (f"fp32 (TF32 allowed) {peak32 / 1e12:.1f} TFLOP/s, bf16 {peak16 / 1e12:.1f} TFLOP/s" if cuda else
                 f"fp32 {peak32 / 1e9:.1f} GFLOP/s, bf16 {peak16 / 1e9:.2f} GFLOP/s"
                 + ("" if try_bf16 else " (bf16 is far slower than fp32 on this CPU, so fp32 is the best setting "
                                        "for both and bf16 runs were skipped)"))
    where = torch.cuda.get_device_name() if cuda else machine_line()
    lines = [
        f"### iGPT training step, preset `{args.preset}`, batch {args.batch} x {T} tokens, {args.device}",
        "",
        f"{where}. Matmul peak measured now: {peak_note}. {flops / 1e9:.1f} GFLOP per step (6N + 6LTC).",
        "",
        f"| implementation | precision | compiled | {clock} | wall s/step | tokens/s | GFLOP/s | % fp32 peak | "
        "% bf16 peak | speed-up vs best transformers |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (name, bf16, compiled), (t, wall) in results.items():
        rate = flops / t
        lines.append(f"| {name} | {'bf16 autocast' if bf16 else 'fp32'} | {'yes' if compiled else 'no'} | "
                     f"{t:.3f} | {wall:.3f} | {args.batch * T / t:,.0f} | {rate / 1e9:,.1f} | "
                     f"{100 * rate / peak32:.0f} % | {100 * rate / peak16:.0f} % | {ref / t:.2f}x |")
    lines += [f"\nNot timed: {f}" for f in failed]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
