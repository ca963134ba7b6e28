#!/bin/sh
# nvcc_link_check.sh BUILD_DIR: the real-CUDA build. Compiles every
# kernels/*.cu and backend_cuda.cpp (as CUDA, -x cu) with nvcc for sm_80,
# sm_89 and sm_90 (warnings are errors), links them with vlm-run's main and
# the runtime libraries CMake built in BUILD_DIR (minus the emulator build of
# the kernels, which this replaces) and cuBLAS/cudart into
# BUILD_DIR/nvcc-link/vlm-run, and runs `vlm-run --backend cuda --selftest`
# (exit 2, "no CUDA device", is expected on a machine without a GPU).
# Without nvcc it says so and exits 0: the CPU product does not need it.
set -eu
build=${1:?usage: nvcc_link_check.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cuda=${CUDA_HOME:-/usr/local/cuda}
nvcc=$cuda/bin/nvcc
if [ ! -x "$nvcc" ]; then
  echo "nvcc_link_check: no nvcc at $nvcc: skipped the real-CUDA build"
  exit 0
fi
grep -q '^build bin/vlm-run:\|^build [^ ]*/vlm-run:' "$build/build.ninja" 2>/dev/null ||
  { echo "nvcc_link_check: configure $build with CMake first"; exit 1; }
ninja -C "$build" vlm-run >/dev/null
out=$build/nvcc-link
mkdir -p "$out"
arch="-gencode arch=compute_80,code=sm_80 -gencode arch=compute_89,code=sm_89 -gencode arch=compute_90,code=sm_90"
flags="-std=c++20 -O3 -Werror all-warnings -I$here -I$root/model_runtime"
objs=""
for src in "$here"/*.cu "$here/backend_cuda.cpp"; do
  o=$out/$(basename "$src").o
  echo "nvcc $(basename "$src")"
  # shellcheck disable=SC2086
  "$nvcc" $flags $arch -x cu -c "$src" -o "$o"
  objs="$objs $o"
done
for src in "$root/model_runtime/tools/vlm_run_main.cpp"; do
  o=$out/$(basename "$src").o
  # shellcheck disable=SC2086
  "$nvcc" $flags -c "$src" -o "$o"
  objs="$objs $o"
done
# The runtime's other link dependencies, as CMake resolved them for vlm-run,
# minus the emulator library this build replaces.
libs=$(awk '/^build [^ ]*vlm-run:/{f=1} f&&/LINK_LIBRARIES/{sub(/.*LINK_LIBRARIES = /,""); print; exit}' \
       "$build/build.ninja" | tr ' ' '\n' | grep -v 'libvlm_kernels_emu.a' | grep -v '^$' |
       sed "s|^\([^/-]\)|$build/\1|" | tr '\n' ' ')
# shellcheck disable=SC2086
"$nvcc" -o "$out/vlm-run" $objs -Xlinker --start-group $libs -Xlinker --end-group \
  -L"$cuda/lib64" -lcublas -lcublasLt -lcudart -lpthread
echo "linked $out/vlm-run; SASS per arch:"
if [ -x "$cuda/bin/cuobjdump" ]; then
  "$cuda/bin/cuobjdump" --list-elf "$out/attention_prefill.cu.o" || true
else
  echo "(no cuobjdump in this toolkit; the kernels_nvcc CMake target lists the cubins)"
fi
set +e
LD_LIBRARY_PATH=$cuda/lib64:${LD_LIBRARY_PATH:-} "$out/vlm-run" --backend cuda --selftest \
  --model "$root/tests/fixtures/models/tiny-flash"
rc=$?
set -e
if [ "$rc" -eq 2 ]; then
  echo "nvcc_link_check: linked and ran; no GPU here, so the self-test itself was skipped"
  exit 0
fi
exit "$rc"
