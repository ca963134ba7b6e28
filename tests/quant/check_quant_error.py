#!/usr/bin/env python3
"""Per-matrix error of vlm's Q8/Q4 weights against ggml's q8_0/q4_0.

For each 2-D float tensor of the given models (directories with
model.safetensors or a sharded index, or single .safetensors files):
  - vlm: `vlm-quant-error` quantizes it with core/quant.h's quantize_rows and
    prints ||W - deq(Q(W))||_F / ||W||_F (computed in double);
  - ggml: this script reads the same tensor with numpy (bf16 and f16 widened to
    float32 exactly), quantizes it with the gguf package's numpy port of
    ggml's quantizers (gguf.quants.quantize / dequantize, Q8_0 and Q4_0) and
    computes the same ratio in float64.
Prints a table and fails (exit 1) if vlm's error is larger than ggml's on any
matrix at equal bits per weight (Q8 vs q8_0: 8.5; Q4 vs q4_0: 4.5).

Rows whose width is not a multiple of 32 are zero-padded to one for ggml,
which is what vlm's layout does too (zeros quantize to exactly zero in both,
so the padding adds no error and the ratio is over the real weights).

--synthetic DIR also writes DIR/synthetic.safetensors (bf16, fixed seed):
Gaussian, Student-t (3 degrees of freedom) and Gaussian-with-outlier-columns
matrices, and checks them too: random Gaussian weights are not real weights,
and real LLM weights have heavy tails and outlier input channels.

Usage:
  check_quant_error.py [--bin build/bin/vlm-quant-error] [--synthetic DIR]
                       [--match REGEX] [--per-kind N] [--threads N] PATH...
Needs numpy, safetensors and gguf (tests/quant/requirements.txt; run.sh
installs them into build/venv-quant).
"""
import argparse
import json
import math
import os
import re
import struct
import subprocess
import sys
import time
from importlib.metadata import version

import numpy as np
import safetensors
from safetensors import safe_open
import gguf
from gguf import GGMLQuantizationType as QT

BLOCK = 32
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NP_DTYPES = {"F32": np.float32, "BF16": np.uint16, "F16": np.float16}
ROW_CHUNK_ELEMS = 1 << 22  # ggml's side works on this many weights at a time


def fail(msg):
    print("check_quant_error: " + msg, file=sys.stderr)
    sys.exit(2)


def model_files(path):
    """The safetensors files of a model directory or the file itself."""
    if os.path.isfile(path):
        return [path]
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.isfile(index):
        with open(index) as f:
            weight_map = json.load(f).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            fail(index + ": no weight_map")
        return sorted({os.path.join(path, v) for v in weight_map.values()})
    single = os.path.join(path, "model.safetensors")
    if os.path.isfile(single):
        return [single]
    fail(path + ": neither a .safetensors file nor a model directory")


class Matrix:
    """A 2-D float tensor of a safetensors file, read lazily through a memmap."""

    def __init__(self, name, file, dtype, shape, offset):
        self.name, self.file, self.dtype, self.shape, self.offset = name, file, dtype, shape, offset

    def rows(self, r0, r1):
        """Rows [r0, r1) as float32 (bf16 and f16 widen exactly)."""
        cols = self.shape[1]
        raw = np.memmap(self.file, dtype=NP_DTYPES[self.dtype], mode="r",
                        offset=self.offset, shape=tuple(self.shape))[r0:r1]
        if self.dtype == "BF16":
            return (raw.astype(np.uint32) << 16).view(np.float32).reshape(r1 - r0, cols)
        return np.asarray(raw, dtype=np.float32)


def list_matrices(path):
    """Every 2-D float tensor of the model, by name. The header is read here
    for the data offsets; the safetensors package checks the file and agrees
    on every name, dtype and shape."""
    out = {}
    for file in model_files(path):
        size = os.path.getsize(file)
        with open(file, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                fail(file + ": shorter than a safetensors header")
            (n,) = struct.unpack("<Q", head)
            if n > min(size - 8, 100_000_000):
                fail(file + ": bad header length %d" % n)
            header = json.loads(f.read(n))
        base = 8 + n
        with safe_open(file, framework="np") as st:
            names = set(st.keys())
            if names != {k for k in header if k != "__metadata__"}:
                fail(file + ": header names differ from the safetensors package's")
            for name in sorted(names):
                info = header[name]
                sl = st.get_slice(name)
                if [int(x) for x in sl.get_shape()] != info["shape"]:
                    fail(file + ": " + name + ": shape differs from the safetensors package's")
                if len(info["shape"]) != 2 or info["dtype"] not in NP_DTYPES:
                    continue
                begin, end = info["data_offsets"]
                rows, cols = info["shape"]
                if end - begin != rows * cols * np.dtype(NP_DTYPES[info["dtype"]]).itemsize or base + end > size:
                    fail(file + ": " + name + ": data does not match its shape")
                out[name] = Matrix(name, file, info["dtype"], [rows, cols], base + begin)
    return out


def ggml_rel_rms(m, qtype):
    """||W - deq(Q(W))||_F / ||W||_F with gguf's ggml quantizer, or None for
    an all-zero W."""
    rows, cols = m.shape
    padded = -(-cols // BLOCK) * BLOCK
    step = max(1, ROW_CHUNK_ELEMS // padded)
    err = norm = 0.0
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        w = np.zeros((r1 - r0, padded), dtype=np.float32)
        w[:, :cols] = m.rows(r0, r1)
        if not np.isfinite(w).all():
            fail(m.name + ": holds a NaN or an infinity")
        deq = gguf.quants.dequantize(gguf.quants.quantize(w, qtype), qtype)
        if deq.shape != w.shape:
            fail(m.name + ": gguf returned shape %s for %s" % (deq.shape, w.shape))
        w64 = w.astype(np.float64)
        d = w64 - deq.astype(np.float64)
        err += float(np.dot(d.ravel(), d.ravel()))
        norm += float(np.dot(w64.ravel(), w64.ravel()))
    return math.sqrt(err / norm) if norm > 0 else None


def kind_of(name):
    """The name with layer and block numbers blanked: one kind per matrix role."""
    return re.sub(r"\.\d+\.", ".N.", name)


def pick(matrices, match, per_kind):
    names = [n for n in sorted(matrices) if not match or re.search(match, n)]
    if per_kind:
        seen, kept = {}, []
        for n in names:
            k = kind_of(n)
            seen[k] = seen.get(k, 0) + 1
            if seen[k] <= per_kind:
                kept.append(n)
        names = kept
    return names


def run_vlm(binary, path, names, threads):
    cmd = [binary]
    if threads:
        cmd += ["--threads", str(threads)]
    for n in names:
        cmd += ["--tensor", n]
    cmd.append(path)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        fail("%s exited %d" % (" ".join(cmd[:1] + cmd[-1:]), proc.returncode))
    out = {}
    for line in proc.stdout.splitlines():
        rec = json.loads(line)
        out[rec["name"]] = rec
    if sorted(out) != sorted(names):
        fail(binary + " did not report every tensor asked for")
    return out


def synthetic_matrices(path):
    """Writes the heavy-tailed test matrices (bf16, as real checkpoints) to `path`."""
    rng = np.random.default_rng(20251)
    rows, cols = 256, 1024
    gauss = rng.standard_normal((rows, cols)) * 0.02
    student = rng.standard_t(3, (rows, cols)) * 0.02
    outlier = rng.standard_normal((rows, cols)) * 0.02
    outlier[:, rng.choice(cols, 8, replace=False)] *= 30.0  # a few large input channels
    # Rows of very different scales, each heavy-tailed.
    row_scale = np.exp(rng.standard_normal((rows, 1)) * 1.5)
    rows_t = rng.standard_t(4, (rows, cols)) * 0.01 * row_scale
    mats = {"synthetic.gauss": gauss, "synthetic.student_t3": student,
            "synthetic.outlier_columns": outlier, "synthetic.row_scales_t4": rows_t}
    keep, specs = [], {}
    for name, a in mats.items():
        u32 = a.astype(np.float32).view(np.uint32)
        bf16 = ((u32 + 0x7FFF + ((u32 >> 16) & 1)) >> 16).astype(np.uint16)  # round to nearest even
        keep.append(bf16)
        specs[name] = safetensors.TensorSpec(dtype="bfloat16", shape=[rows, cols],
                                             data_ptr=bf16.ctypes.data, data_len=bf16.nbytes)
    safetensors.serialize_file(specs, path)
    del keep


def fmt(x):
    return "-" if x is None else "%.5f" % x


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="*", help="model directories or .safetensors files")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin", "vlm-quant-error"))
    ap.add_argument("--synthetic", metavar="DIR", help="also check heavy-tailed matrices written there")
    ap.add_argument("--match", help="only tensors whose name matches this regular expression")
    ap.add_argument("--per-kind", type=int, default=0,
                    help="at most this many tensors of each kind (name with layer numbers blanked)")
    ap.add_argument("--threads", type=int, default=0, help="vlm-quant-error's threads")
    ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON lines")
    args = ap.parse_args()
    if not os.access(args.bin, os.X_OK):
        fail(args.bin + " is missing (make build)")
    paths = list(args.paths)
    if args.synthetic:
        os.makedirs(args.synthetic, exist_ok=True)
        syn = os.path.join(args.synthetic, "synthetic.safetensors")
        synthetic_matrices(syn)
        paths.append(syn)
    if not paths:
        fail("no model given")
    print("gguf %s, numpy %s, safetensors %s" % tuple(version(p) for p in ("gguf", "numpy", "safetensors")))
    rows, worse = [], []
    for path in paths:
        matrices = list_matrices(path)
        names = pick(matrices, args.match, args.per_kind)
        if not names:
            fail(path + ": no 2-D float tensor selected")
        t0 = time.time()
        ours = run_vlm(args.bin, path, names, args.threads)
        t_vlm = time.time() - t0
        t0 = time.time()
        for n in names:
            m = matrices[n]
            rec = ours[n]
            if rec["shape"] != m.shape or rec["dtype"] != m.dtype:
                fail(n + ": vlm-quant-error and numpy disagree on its shape or dtype")
            row = {"model": path, "name": n, "dtype": m.dtype, "shape": m.shape,
                   "vlm_q8": rec["q8"]["rel_rms"], "ggml_q8_0": ggml_rel_rms(m, QT.Q8_0),
                   "vlm_q4": rec["q4"]["rel_rms"], "ggml_q4_0": ggml_rel_rms(m, QT.Q4_0)}
            rows.append(row)
            for a, b in (("vlm_q8", "ggml_q8_0"), ("vlm_q4", "ggml_q4_0")):
                if (row[a] is None) != (row[b] is None) or (row[a] is not None and row[a] > row[b]):
                    worse.append("%s %s: %s %s > %s %s" % (path, n, a, fmt(row[a]), b, fmt(row[b])))
        t_ggml = time.time() - t0
        print("\n%s: %d matrices (vlm-quant-error %.1fs, gguf %.1fs)" % (path, len(names), t_vlm, t_ggml))
        print("| tensor | shape | vlm Q8 | ggml q8_0 | vlm Q4 | ggml q4_0 | q4_0 / Q4 |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            if r["model"] != path:
                continue
            ratio = r["ggml_q4_0"] / r["vlm_q4"] if r["vlm_q4"] else None
            print("| %s | %dx%d | %s | %s | %s | %s | %s |" % (
                r["name"], r["shape"][0], r["shape"][1], fmt(r["vlm_q8"]), fmt(r["ggml_q8_0"]),
                fmt(r["vlm_q4"]), fmt(r["ggml_q4_0"]), "-" if ratio is None else "%.3f" % ratio))
    if args.json:
        with open(args.json, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    n_worse_rows = len({w.rsplit(":", 1)[0] for w in worse})
    print()
    for w in worse:
        print("WORSE than ggml: " + w)
    print("%d passed, %d failed" % (len(rows) - n_worse_rows, n_worse_rows))
    return 1 if worse else 0


if __name__ == "__main__":
    sys.exit(main())
