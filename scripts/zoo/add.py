"""Add a trained model directory to pixseq's zoo, with its card and regression check.

A maintainer's tool (not a verb): measures the model's regression check
(:mod:`pixseq.zoo.quality`) in float32 and on a float16 copy of its weights, stores the
float16 copy when it measures within a quarter of the check's tolerance (the card shows
both numbers), and indexes the model with its checksums::

    python3 scripts/zoo/add.py RUN_DIR --name igpt-fm28 --summary "..." --command "pixseq train igpt ..." \\
        --data "Fashion-MNIST train (60 000)" --quality "held-out bits/pixel=1.10" --quality "wall time=70 min"

``--quality KEY=VALUE`` lines go on the card as they are (the numbers measured elsewhere:
FID, the codec's rate, training time).
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))


def _fp16_copy(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with every float32 tensor rounded to float16 and back (what loading the stored copy gives)."""
    half = copy.deepcopy(model)
    with torch.no_grad():
        for t in list(half.parameters()) + list(half.buffers()):
            if t.dtype == torch.float32:
                t.copy_(t.half().float())
    return half


def history_numbers(path: Path, wall_s: float | None, live_s: float = 300.0) -> dict[str, str]:
    """Card lines from a run's ``history.jsonl``: steps, the summed step time, and the held-out
    numbers at the first checkpoint after ``live_s`` seconds of steps (what a live five-minute
    run of the same recipe would have reached, schedule aside) and at the end."""
    import json

    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    by_step = {r["step"]: r for r in rows}  # a resumed run repeats the steps after its checkpoint
    rows = [by_step[k] for k in sorted(by_step)]
    elapsed, early, last = 0.0, None, None
    for r in rows:
        elapsed += r.get("time_s", 0.0)
        held = {k[5:]: v for k, v in r.items() if k.startswith("eval/")}
        if held:
            last = (r["step"] + 1, elapsed, held)
            if early is None and elapsed >= live_s:
                early = last
    out = {"training": f"{len(rows)} steps, {elapsed / 60:.0f} min of step time on 1 thread of this machine's "
                       f"2 shared cores" + (f" ({wall_s / 60:.0f} min wall with start-up and evaluations)"
                                            if wall_s else "")}
    fmt = lambda held: ", ".join(f"{k} {v:.3f}" for k, v in sorted(held.items()) if k != "loss")  # noqa: E731
    if last:
        out["held-out at the end"] = f"{fmt(last[2])} (step {last[0]})"
    if early and early is not last:
        out[f"held-out after {live_s / 60:.0f} min (the demo's live budget)"] = (
            f"{fmt(early[2])} (step {early[0]}, {early[1] / 60:.1f} min of steps)")
    return out


def main() -> None:
    from pixseq.checkpoint import load_model
    from pixseq.zoo.build import add_model
    from pixseq.zoo.quality import Check, measure, new_check

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("--name", required=True)
    ap.add_argument("--summary", required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--quality", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--check-data", default=None, help="data spec of the regression check (default: per kind)")
    ap.add_argument("--notes", default="", help="a markdown paragraph for the card")
    ap.add_argument("--no-fp16", action="store_true")
    ap.add_argument("--history", type=Path, default=None, help="the run's history.jsonl (training time, held-out)")
    ap.add_argument("--wall-s", type=float, default=None, help="the run's wall seconds (from /usr/bin/time)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = load_model(args.src)
    check32 = new_check(model, args.check_data)
    value16 = measure(_fp16_copy(model), check32.metric, check32.data, check32.images)
    fp16 = not args.no_fp16 and abs(value16 - check32.value) <= check32.tolerance / 4
    check = Check(check32.metric, check32.data, check32.images, value16 if fp16 else check32.value,
                  check32.tolerance)
    quality = history_numbers(args.history, args.wall_s) if args.history else {}
    quality.update(dict(q.split("=", 1) for q in args.quality))
    quality[f"check: {check.metric} on the first {check.images} of {check.data}"] = (
        f"{check32.value:.4f} (float32), {value16:.4f} (float16 copy)")
    quality["check"] = check.as_dict()
    entry = add_model(args.src, args.name, args.summary, args.command, args.data, quality, fp16=fp16,
                      notes=args.notes)
    print(f"added {entry.name}: {entry.extra['size_bytes'] / 2**20:.2f} MiB, "
          f"{'float16' if fp16 else 'float32'}; check {check.as_dict()}")


if __name__ == "__main__":
    main()
