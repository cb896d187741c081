#!/usr/bin/env bash
# Install everything ovdense needs on a CPU machine (idempotent: installs only what is missing).
#
# The slow part is mmcv 2.1.0: it has no CPU wheel and its sdist needs two fixes to build against
# torch 2.14 (C++20 instead of C++17). The first build takes ~30 min on 2 cores; the wheel is then
# kept in $OVDENSE_CACHE/wheels, keyed by the torch version, and later runs reuse it in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
CACHE=${OVDENSE_CACHE:-$HOME/.cache/ovdense}
PIP=("$PY" -m pip install --disable-pip-version-check --no-input -q)
log() { printf '[install] %s\n' "$*" >&2; }

have() {  # have PKG==VER : true when that version is installed (any local build of it: 2.14.1+cpu is 2.14.1)
  "$PY" - "$1" <<'PYEOF'
import sys
from importlib import metadata
name, ver = sys.argv[1].split("==")
try:
    sys.exit(0 if metadata.version(name).split("+")[0] == ver else 1)
except metadata.PackageNotFoundError:
    sys.exit(1)
PYEOF
}

# 1. torch / torchvision (taken from local disk where the machine has them; constraints.txt pins).
#    TORCH_INDEX=https://download.pytorch.org/whl/cpu takes PyTorch's CPU build instead of PyPI's CUDA one:
#    `import torch` 0.21 GB of memory instead of 0.51 GB, and ~5 GB less on disk (install it before anything else).
if ! have torch==2.14.1 || ! have torchvision==0.29.1; then
  log "installing torch 2.14.1 / torchvision 0.29.1${TORCH_INDEX:+ from $TORCH_INDEX}"
  "${PIP[@]}" -c requirements/constraints.txt ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} torch==2.14.1 torchvision==0.29.1
fi
"${PIP[@]}" -c requirements/constraints.txt "setuptools>=77.0.3,<81" wheel ninja packaging

# 2. mmcv 2.1.0 with CPU ops, built once per torch version and cached.
if ! have mmcv==2.1.0 || ! "$PY" -c "import mmcv.ops" >/dev/null 2>&1; then
  # keyed by the torch build: 2.14.1 for PyPI's (its +cuXXX label names a CUDA that mmcv's CPU ops never link),
  # 2.14.1+cpu for PyTorch's CPU build, a different binary
  TORCH_VER=$("$PY" -c "import torch; v = torch.__version__; print(v if v.endswith('+cpu') else v.split('+')[0])")
  WHEEL_DIR="$CACHE/wheels/torch-$TORCH_VER"
  mkdir -p "$WHEEL_DIR"
  WHEEL=$(ls "$WHEEL_DIR"/mmcv-2.1.0-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$WHEEL" ]; then
    log "building mmcv 2.1.0 for torch $TORCH_VER (first time only, ~30 min on 2 cores)"
    BUILD=$(mktemp -d)
    "$PY" -m pip download --disable-pip-version-check -q mmcv==2.1.0 --no-deps --no-binary :all: -d "$BUILD"
    tar -xzf "$BUILD"/mmcv-2.1.0.tar.gz -C "$BUILD"
    sed -i 's/-std=c++17/-std=c++20/g' "$BUILD/mmcv-2.1.0/setup.py"
    (cd "$BUILD/mmcv-2.1.0" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-2} \
      CFLAGS="-DNDEBUG -g0 -fwrapv -O3 -Wall" \
      "$PY" -m pip wheel --disable-pip-version-check -q --no-build-isolation --no-deps -w "$BUILD/dist" .)
    # atomic publish into the cache: a killed build never leaves a half-written wheel behind
    built=$(ls "$BUILD"/dist/mmcv-2.1.0-*.whl)
    cp "$built" "$WHEEL_DIR/.partial.whl" && mv "$WHEEL_DIR/.partial.whl" "$WHEEL_DIR/$(basename "$built")"
    rm -rf "$BUILD"
    WHEEL="$WHEEL_DIR/$(basename "$built")"
  fi
  log "installing $WHEEL"
  "${PIP[@]}" -c requirements/constraints.txt --no-deps --force-reinstall "$WHEEL"
fi

# 3. the rest, pinned; only when something is missing (a satisfied `pip install -r` would still
#    re-resolve mmengine's opencv-python dependency and bring it back next to the headless build).
unmet=$("$PY" - requirements/runtime.txt requirements/tests.txt <<'PYEOF'
import sys
from importlib import metadata
from packaging.requirements import Requirement
for path in sys.argv[1:]:
    for line in open(path):
        line = line.split('#')[0].strip()
        if not line:
            continue
        req = Requirement(line)
        try:
            ok = metadata.version(req.name) in req.specifier or not req.specifier
        except metadata.PackageNotFoundError:
            ok = False
        if not ok:
            print(line)
PYEOF
)
if [ -n "$unmet" ]; then
  log "installing: $(echo $unmet)"
  "${PIP[@]}" -c requirements/constraints.txt -r requirements/runtime.txt -r requirements/tests.txt
fi

# 4. mmengine pulls opencv-python next to opencv-python-headless; both own cv2/: keep headless only.
if "$PY" -m pip show -q opencv-python >/dev/null 2>&1; then
  log "replacing opencv-python by opencv-python-headless"
  "$PY" -m pip uninstall -y -q opencv-python opencv-python-headless
  "${PIP[@]}" -c requirements/constraints.txt opencv-python-headless
fi

# 5. Debian's Chromium + ChromeDriver for the web demo's browser test (skipped with its reason without them).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    log "installing chromium + chromium-driver (Debian packages)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      chromium chromium-driver >/dev/null) || log "could not install chromium: the browser test will be skipped"
  else
    log "no apt-get as root: install chromium and chromium-driver yourself for the browser test"
  fi
fi

# 6. ovdense itself, editable, from THIS checkout (another clone may be installed already), compiling its C++
#    extension ovdense._ext against this torch (~1 min): again when it is missing, fails to load (another torch)
#    or is older than its source.
HERE=$(pwd -P)
WHERE=$(cd / && "$PY" -c "import ovdense, os; print(os.path.dirname(os.path.dirname(os.path.realpath(ovdense.__file__))))" 2>/dev/null || true)
EXT=$(ls ovdense/_ext*.so 2>/dev/null | head -n1 || true)
if [ "$WHERE" != "$HERE" ] || [ -z "$EXT" ] || [ -n "$(find ovdense/csrc -newer "$EXT" -type f)" ] \
    || ! (cd / && "$PY" -c "import ovdense._ext") >/dev/null 2>&1; then
  log "installing ovdense (editable, compiling ovdense._ext) from $HERE"
  "${PIP[@]}" --no-deps --no-build-isolation -e .
fi
"$PY" -c "import torch, mmcv.ops, mmdet, mmseg, open_clip, ovdense, ovdense._ext; print('[install] ok: torch', torch.__version__, '| mmcv', mmcv.__version__, '| mmdet', mmdet.__version__, '| mmseg', mmseg.__version__, '| open_clip', open_clip.__version__)"
