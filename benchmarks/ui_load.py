"""Load test of the web UI: ``pixseq ui`` from launch to a served page, then concurrent
clients sending Complete requests with a shipped model.

1. ``pixseq ui`` starts in a subprocess on a free port (the shipped models offered, as a
   user gets it); the start time runs from ``Popen`` to the first HTTP 200 of ``/``.
2. One Complete request warms the server (the model's weights load on first use; its time
   is reported apart, as "first request").
3. ``--clients`` threads, each its own ``gradio_client.Client`` (a session of its own, as a
   browser tab is), send ``--requests`` Complete requests each, one after another, through
   the page's ``/complete`` endpoint: a Fashion-MNIST test image, ``--rows`` rows kept,
   ``--completions`` completions, the class guessed (the form's default), a seed per request.
   Every request must come back with the page's status "... kept | N completion(s)"; one
   that raises, times out or comes back with an error counts as failed, and "lost" is
   sent minus returned.

The server computes ``--concurrency`` requests at once (the UI's queue; the others wait,
up to ``--queue-size``): the latency of a request is its queueing plus its computing, so
with 8 clients and a limit of 2 the median is about 4 computing times. The limit the page
states (its header) is read back and reported. The server runs with
``OMP_NUM_THREADS=--threads`` (each computing request one thread by default).

Run: ``flock /tmp/pixseq-heavy.lock nice -n 10 python benchmarks/ui_load.py --json out.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_page(url: str, proc: subprocess.Popen, timeout: float) -> float:
    """Poll ``url`` until it answers 200; the ``time.perf_counter()`` of that answer."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pixseq ui exited with {proc.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    r.read()
                    return time.perf_counter()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"pixseq ui did not serve {url} within {timeout:.0f} s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_line(log: Path, pattern: str, timeout: float = 120) -> re.Match | None:
    """The first match of ``pattern`` in the server's log, waited for up to ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, log.read_text())
        if found:
            return found
        time.sleep(0.1)
    return None


def stated_limits(url: str) -> str:
    """The header line of the page that states the queue and concurrency limit."""
    with urllib.request.urlopen(url + "config", timeout=30) as r:
        config = json.load(r)
    for comp in config.get("components", []):
        value = (comp.get("props") or {}).get("value")
        if isinstance(value, str) and "requests run at once" in value:
            return re.search(r"[^.]*requests run at once[^.]*\.", value).group(0).strip()
    return "(not found in the page)"


def inputs(folder: Path, count: int) -> list[Path]:
    """``count`` Fashion-MNIST test images as PNG files (the uploads)."""
    from PIL import Image

    from pixseq.data import load_fashion_mnist

    paths = []
    for i, image in enumerate(load_fashion_mnist("test", limit=count).images):
        paths.append(folder / f"fm-test-{i}.png")
        Image.fromarray(np.asarray(image)).save(paths[-1])
    return paths


def editor(client_mod, path: Path) -> dict:
    f = client_mod.handle_file(str(path))
    return {"background": f, "layers": [], "composite": f, "id": None}


def one_request(client, client_mod, path: Path, args, seed: int) -> tuple[float, str | None]:
    """Latency of one Complete request and its failure (None when it completed)."""
    t0 = time.perf_counter()
    try:
        _grid, status = client.predict(editor(client_mod, path), args.model, args.rows, args.completions, "",
                                       1.0, 0, 1.0, seed, api_name="/complete")
    except Exception as exc:  # noqa: BLE001 - any failure of a request is what is counted
        return time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"
    dt = time.perf_counter() - t0
    want = f"kept | {args.completions} completion"
    return dt, None if want in status else f"status without {want!r}: {status[:200]}"


def load(url: str, paths: list[Path], args) -> dict:
    """``args.clients`` threads x ``args.requests`` requests; latencies and failures."""
    import gradio_client as client_mod

    results: list[tuple[int, int, float, str | None]] = []
    lock = threading.Lock()
    clients = [client_mod.Client(url, verbose=False, download_files=False) for _ in range(args.clients)]
    start = threading.Barrier(args.clients + 1)

    def run(c: int) -> None:
        start.wait()
        for r in range(args.requests):
            seed = 1000 * c + r
            dt, err = one_request(clients[c], client_mod, paths[seed % len(paths)], args, seed)
            with lock:
                results.append((c, r, dt, err))

    threads = [threading.Thread(target=run, args=(c,)) for c in range(args.clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    for c in clients:
        c.close()
    sent = args.clients * args.requests
    lat = np.array([dt for *_, dt, err in results if err is None])
    errors = [err for *_, err in results if err is not None]
    pct = (lambda q: float(np.percentile(lat, q))) if lat.size else (lambda q: float("nan"))
    return {"sent": sent, "returned": len(results), "answered": int(lat.size), "failed": len(errors),
            "lost": sent - len(results), "errors": errors[:5], "wall_s": wall,
            "p50_s": pct(50), "p95_s": pct(95), "max_s": float(lat.max()) if lat.size else float("nan"),
            "mean_s": float(lat.mean()) if lat.size else float("nan"),
            "throughput_per_s": lat.size / wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="zoo:igpt-fm28")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=10, help="requests per client")
    ap.add_argument("--rows", type=int, default=16, help="rows kept (of the model's 28)")
    ap.add_argument("--completions", type=int, default=1, help="completions per request")
    ap.add_argument("--concurrency", type=int, default=2, help="the server's --concurrency")
    ap.add_argument("--queue-size", type=int, default=64, help="the server's --queue-size")
    ap.add_argument("--threads", type=int, default=1, help="the server's OMP_NUM_THREADS")
    ap.add_argument("--start-timeout", type=float, default=300)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import torch

    from pixseq.version import __version__

    with tempfile.TemporaryDirectory(prefix="pixseq-ui-load-") as tmp:
        tmp = Path(tmp)
        (tmp / "work").mkdir()
        paths = inputs(tmp, 32)
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
               "OMP_NUM_THREADS": str(args.threads), "PIXSEQ_OFFLINE": "1"}
        log = tmp / "server.log"
        cmd = [sys.executable, "-m", "pixseq", "ui", "--port", str(port), "--work", str(tmp / "work"),
               "--concurrency", str(args.concurrency), "--queue-size", str(args.queue_size)]
        with open(log, "w") as out:
            t_launch = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            start_s = wait_page(url, proc, args.start_timeout) - t_launch
            start_cpu = cpu_seconds(proc.pid)  # the noise-proof part: the machine is shared
            ready = wait_line(log, r"ready in ([0-9.]+) s")  # printed once the examples are warm too
            limits = stated_limits(url)
            import gradio_client as client_mod

            warm = client_mod.Client(url, verbose=False, download_files=False)
            first_s, first_err = one_request(warm, client_mod, paths[0], args, 0)
            warm.close()
            if first_err:
                raise RuntimeError(f"the first request failed: {first_err}\n{log.read_text()[-2000:]}")
            cpu0, load0 = cpu_seconds(proc.pid), os.getloadavg()[0]
            res = load(url, paths, args)
            res.update(server_cpu_s=cpu_seconds(proc.pid) - cpu0, loadavg_1min_before=load0,
                       loadavg_1min_after=os.getloadavg()[0])
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        text = log.read_text()
        res.update(start_s=start_s, start_cpu_s=start_cpu, server_ready_s=float(ready.group(1)) if ready else None, first_request_s=first_s,
                   server_exit=proc.returncode, tracebacks=text.count("Traceback"),
                   work_left=sorted(p.name for p in (tmp / "work").iterdir()))

    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, pixseq {__version__}"
    settings = (f"{args.model}, keep {args.rows} of 28 rows, {args.completions} completion(s) per request, class "
                f"guessed; server --concurrency {args.concurrency} --queue-size {args.queue_size}, "
                f"OMP_NUM_THREADS={args.threads}")
    print(f"machine: {machine}\nsettings: {settings}\npage states: {limits}\n")
    print("| measure | value |\n|---|---|")
    rows = [("`pixseq ui` launch -> first HTTP 200 of /", f"{res['start_s']:.1f} s"),
            ("server CPU (user + sys) until that page", f"{res['start_cpu_s']:.1f} s"),
            ("server's own 'ready in' (from serve(), after the CLI's imports)", f"{res['server_ready_s']:.1f} s" if res["server_ready_s"] else "-"),
            ("first request (loads the model)", f"{res['first_request_s']:.2f} s"),
            ("clients x requests", f"{args.clients} x {args.requests} = {res['sent']}"),
            ("answered / failed / lost", f"{res['answered']} / {res['failed']} / {res['lost']}"),
            ("latency p50", f"{res['p50_s']:.2f} s"), ("latency p95", f"{res['p95_s']:.2f} s"),
            ("latency max", f"{res['max_s']:.2f} s"),
            ("wall time, throughput", f"{res['wall_s']:.1f} s, {res['throughput_per_s']:.2f} requests/s"),
            ("server CPU per request (user + sys)", f"{res['server_cpu_s'] / max(1, res['answered']):.2f} s"),
            ("machine load average (1 min) before / after",
             f"{res['loadavg_1min_before']:.1f} / {res['loadavg_1min_after']:.1f}"),
            ("server exit code, tracebacks in its log, files left in --work",
             f"{res['server_exit']}, {res['tracebacks']}, {len(res['work_left'])}")]
    for name, value in rows:
        print(f"| {name} | {value} |")
    if res["errors"]:
        print("\nfirst errors:", *res["errors"], sep="\n  ")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "settings": settings, "page_states": limits,
                                         "args": {k: str(v) for k, v in vars(args).items()}, **res}, indent=2))


if __name__ == "__main__":
    main()
