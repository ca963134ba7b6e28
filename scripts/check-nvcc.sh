#!/bin/sh
# Builds every kernels/*.cu with the real nvcc for sm_80, sm_89 and sm_90 with
# warnings as errors and shows the SASS of each with cuobjdump. The toolkit
# here has no cuobjdump, so it comes from NVIDIA's PyPI wheel (pinned) in
# build/venv-cuda-tools. Without nvcc it says what it skipped and succeeds:
# the CPU product does not need CUDA.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/release}

nvcc=$(command -v nvcc || true)
[ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
if [ -z "$nvcc" ]; then
    echo "check-nvcc: SKIPPED: nvcc not found; kernels were tested only on the emulator"
    exit 0
fi

cuobjdump=$(command -v cuobjdump || true)
if [ -z "$cuobjdump" ]; then
    venv=$root/build/venv-cuda-tools
    cuobjdump=$(find "$venv" -name cuobjdump -type f 2>/dev/null | head -1)
    if [ -z "$cuobjdump" ]; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check \
            "nvidia-cuda-cuobjdump==13.2.51"
        cuobjdump=$(find "$venv" -name cuobjdump -type f | head -1)
    fi
fi

cmake -S "$root" -B "$build" -DVLM_NVCC_CHECK=ON -DVLM_CUOBJDUMP="$cuobjdump" >/dev/null
ninja -C "$build" kernels_nvcc
