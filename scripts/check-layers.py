#!/usr/bin/env python3
"""check-layers.py: fails when the architecture's layering is broken.

Checks (each a function; add one for a new rule):
  runtime_includes  every #include "layer/file.h" in model_runtime/ and
                    kernels/ points to the same layer or a lower one (the
                    order below), so no include cycle between folders can
                    form; kernels/ includes nothing of the runtime but core/.
Usage: scripts/check-layers.py   (exit 1 and one line per violation)
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Rank of each folder: a file may include its own folder and lower ranks.
# kernels/ is the CUDA backend: beside backend/, and it sees only core/.
RUNTIME_RANKS = {
    "core": 0, "util": 0, "ipc": 0,
    "text": 1, "image": 1,
    "model": 2, "backend": 2,
    "generate": 3,
    "tasks": 4,
    "serve": 5,
    "tools": 6, "bench": 6,
}
KERNELS_MAY_INCLUDE = {"core"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
SOURCES = (".c", ".cpp", ".h", ".cu", ".cuh")


def sources(top):
    for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
        for f in sorted(files):
            if f.endswith(SOURCES):
                yield os.path.join(dirpath, f)


def quoted_includes(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    for m in INCLUDE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        yield line, m.group(1)


def runtime_includes():
    errors = []
    for path in sources("model_runtime"):
        rel = os.path.relpath(path, os.path.join(ROOT, "model_runtime"))
        layer = rel.split(os.sep)[0]
        if layer not in RUNTIME_RANKS:
            errors.append(f"model_runtime/{rel}: folder '{layer}' has no rank in check-layers.py")
            continue
        for line, inc in quoted_includes(path):
            target = inc.split("/")[0]
            if "/" not in inc:
                # a bare name: a header of kernels/ (the cuda backend) or of ipc/
                if os.path.exists(os.path.join(ROOT, "kernels", inc)):
                    target = "kernels"
                elif layer == "ipc":
                    continue   # C, compiled into nginx with its own include path
                else:
                    errors.append(f"model_runtime/{rel}:{line}: write \"{inc}\" as \"<layer>/{inc}\"")
                    continue
            if target == "kernels":
                # the cuda backend sits beside backend/ (rank 2): make_backend
                # and the programs above it may name it
                if layer != "backend" and RUNTIME_RANKS[layer] <= 2:
                    errors.append(f"model_runtime/{rel}:{line}: {layer}/ includes kernels/ "
                                  f"(\"{inc}\"); only backend/ and layers above it may")
                continue
            if target not in RUNTIME_RANKS:
                errors.append(f"model_runtime/{rel}:{line}: include \"{inc}\": unknown layer")
            elif RUNTIME_RANKS[target] > RUNTIME_RANKS[layer] or (
                    RUNTIME_RANKS[target] == RUNTIME_RANKS[layer] and target != layer):
                errors.append(f"model_runtime/{rel}:{line}: {layer}/ (rank {RUNTIME_RANKS[layer]}) "
                              f"includes \"{inc}\" (rank {RUNTIME_RANKS[target]}): points up or sideways")
    for path in sources("kernels"):
        rel = os.path.relpath(path, ROOT)
        for line, inc in quoted_includes(path):
            if "/" not in inc or inc.startswith(("emu/", "../")):
                continue   # kernels' own headers
            if inc.split("/")[0] not in KERNELS_MAY_INCLUDE:
                errors.append(f"{rel}:{line}: kernels/ includes \"{inc}\"; only core/ is allowed")
    return errors


CHECKS = [runtime_includes]


def main():
    failed = False
    for check in CHECKS:
        errors = check()
        for e in errors:
            print(e)
        print(f"check-layers: {check.__name__}: {'FAILED' if errors else 'ok'}")
        failed = failed or bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
