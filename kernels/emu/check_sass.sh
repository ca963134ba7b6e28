#!/bin/sh
# check_sass.sh CUOBJDUMP|none CUBIN...: shows that each cubin is a CUDA ELF (SASS) for the sm_NN its
# name carries: `cuobjdump --list-elf` when available, else readelf's machine type (NVIDIA CUDA).
set -eu
cuobjdump=$1
shift
for cubin in "$@"; do
  arch=$(basename "$cubin" .cubin)
  arch=${arch##*.}
  if [ "$cuobjdump" != none ]; then
    listing=$("$cuobjdump" --list-elf "$cubin")
    echo "$listing"
    echo "$listing" | grep -q "$arch" || { echo "kernels_nvcc: $cubin holds no SASS for $arch" >&2; exit 1; }
  else
    machine=$(readelf -h "$cubin" | sed -n 's/^ *Machine: *//p')
    echo "$cubin: $machine ($arch)"
    case "$machine" in *CUDA*) ;; *) echo "kernels_nvcc: $cubin is not a CUDA ELF" >&2; exit 1 ;; esac
  fi
done
