#!/usr/bin/env bash
# Build the one-folder desktop bundle: dist/albumtagger/albumtagger (PyInstaller).
#
#   bash packaging/build.sh                 # in a venv at build/venv (made if missing;
#                                           # it sees the system's packages, e.g. torch)
#   bash packaging/build.sh --current-env   # with the Python that runs this script's
#                                           # `python3` (or $PYTHON) as it is
#
# No model weights are bundled: the model is downloaded on first use, as without the
# bundle. The PyTorch build installed (CPU or CUDA) is the one that gets bundled.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ "${1:-}" != "--current-env" ]; then
  if [ ! -x build/venv/bin/python ]; then
    "$PYTHON" -m venv --system-site-packages build/venv
  fi
  PYTHON=build/venv/bin/python
  "$PYTHON" -m pip install -q -e .
fi
"$PYTHON" -m pip install -q "pyinstaller>=6.10"
"$PYTHON" -m PyInstaller --noconfirm --clean \
  --distpath dist --workpath build/pyinstaller packaging/albumtagger.spec
echo "Built dist/albumtagger ($(du -sh dist/albumtagger | cut -f1)); run dist/albumtagger/albumtagger --help"
