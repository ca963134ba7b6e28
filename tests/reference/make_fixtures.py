#!/usr/bin/env python3
"""make_fixtures.py: regenerates every golden fixture under tests/fixtures/ with the pinned
transformers (see requirements.txt). Deterministic: fixed seeds, synthetic images, a tokenizer
trained on an inline corpus, tiny random GLM-4V models. Leaves out: the real model, network access.

Parts (run in this order; `--only` runs a subset):
  images     tests/fixtures/images/*, tests/fixtures/preprocess/{cases.json,golden.safetensors}
  tokenizer  tests/fixtures/tokenizer/*
  models     tests/fixtures/models/<name>/ (+ golden/)
  transparency  make_transparency.py: colour-key and alpha images, preprocess/transparency/,
             models/tiny-flash/golden-transparency/ (needs the models part's tiny-flash)
  prompts    make_prompt_fixtures.py: tests/fixtures/prompts/cases.json, chat templates and the
             processor's prompt ids per model-directory variant (needs tiny-flash)
"""
import argparse
import json
import os
import random
import struct
import sys
import zlib

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIX = os.path.join(ROOT, "tests", "fixtures")
IMG_DIR = os.path.join(FIX, "images")
FORMAT_VERSION = 1
SEED = 20250607

# Image processor config shared by the preprocess golden and every tiny model: the real Flash file
# with a small pixel budget so grids stay small (min 8 merged tokens, max 48 merged tokens).
PATCH, TEMPORAL, MERGE = 14, 2, 2
FACTOR = PATCH * MERGE
MIN_PIXELS = 112 * 112                     # the real Flash value: t_bar*h*w >= 12544 -> >= 8 merged tokens
MAX_PIXELS = FACTOR * FACTOR * 2 * 12      # -> at most 12 merged tokens (48 patches) per image
# pixel_values are 24x larger than the image they come from (2 frames x float32): none kept here;
# the model goldens hold those of photo, alpha+cjk_screenshot, exif6 and anim (end to end).
PIXEL_VALUES_FOR = ()
# resized images kept for these; the others are covered by decoded/ and the model goldens
RESIZED_FOR = ("photo", "alpha", "cjk_screenshot", "large", "tiny", "photo_webp")
# decoded RGB kept where decoding is not a plain copy of 8-bit RGB samples
DECODED_FOR = ("photo", "alpha", "exif6", "exif3", "exif8", "rgb16", "palette", "anim", "photo_webp")
PREPROCESSOR_CONFIG = {
    "size": {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS},
    "do_rescale": True,
    "patch_size": PATCH,
    "temporal_patch_size": TEMPORAL,
    "merge_size": MERGE,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Glm46VImageProcessor",
    "processor_class": "Glm46VProcessor",
}

CJK_FONTS = [
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
]


def versions():
    import PIL
    import tokenizers
    import torch
    import transformers
    try:
        import torchvision
        tv = torchvision.__version__
    except ImportError:
        tv = None
    return {
        "torch": torch.__version__, "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__, "pillow": PIL.__version__,
        "numpy": np.__version__, "torchvision": tv, "python": sys.version.split()[0],
    }


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


# ----------------------------------------------------------------------------------------------
# Part 1: images
# ----------------------------------------------------------------------------------------------

def _photo_like(w, h, seed):
    """Smooth gradients, a few shapes and mild noise: exercises resize on real-looking content."""
    from PIL import Image, ImageDraw
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(xx / w * 3.1 + 0.3) * np.cos(yy / h * 2.3)
    g = 90 + 120 * (yy / h) + 20 * np.sin(xx / 7.0)
    b = 200 - 150 * (xx / w) * (yy / h) + 25 * np.cos((xx + yy) / 11.0)
    arr = np.stack([r, g, b], -1) + rng.normal(0, 3, (h, w, 3))
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    for i in range(6):
        x0, y0 = int(rng.randint(0, max(1, w - 20))), int(rng.randint(0, max(1, h - 20)))
        x1, y1 = x0 + int(rng.randint(4, max(5, w // 3))), y0 + int(rng.randint(4, max(5, h // 3)))
        col = tuple(int(c) for c in rng.randint(0, 256, 3))
        if i % 2:
            d.ellipse([x0, y0, x1, y1], fill=col, outline=(0, 0, 0))
        else:
            d.rectangle([x0, y0, x1, y1], fill=col)
    d.line([(0, h - 1), (w - 1, 0)], fill=(255, 255, 255), width=3)
    return img


def _exif_with_orientation(orientation):
    from PIL import Image
    ex = Image.Exif()
    ex[0x0112] = orientation
    return ex.tobytes()


def _write_png16(path, arr16):
    """16-bit RGB PNG written by hand (Pillow cannot write RGB 16-bit)."""
    h, w, _ = arr16.shape
    raw = b"".join(b"\x00" + arr16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def _cjk_screenshot(w, h):
    from PIL import Image, ImageDraw, ImageFont
    font_path = next((p for p in CJK_FONTS if os.path.exists(p)), None)
    if font_path is None:
        raise SystemExit("no CJK font: apt-get install fonts-wqy-microhei (generation only)")
    img = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(img)
    big = ImageFont.truetype(font_path, 18)
    small = ImageFont.truetype(font_path, 13)
    # title bar and a sidebar, like an app window
    d.rectangle([0, 0, w - 1, 26], fill=(40, 100, 200))
    d.text((8, 3), "设置 - 博客编辑器", font=big, fill=(255, 255, 255))
    d.rectangle([0, 27, 70, h - 1], fill=(238, 240, 244))
    for i, s in enumerate(["首页", "文章", "图片", "评论"]):
        d.text((10, 36 + 24 * i), s, font=small, fill=(60, 60, 60))
    lines = [
        "今天我们发布了新版本的编辑器。",
        "支持自动生成图片的替代文本，",
        "以及文章摘要和搜索引擎描述。",
        "GLM-4.6V 模型 2025年 第3季度",
    ]
    for i, s in enumerate(lines):
        d.text((80, 36 + 22 * i), s, font=small if i else big, fill=(20, 20, 20))
    # UI boxes: an input field and two buttons
    d.rectangle([80, h - 60, w - 12, h - 38], outline=(150, 150, 150), fill=(250, 250, 250))
    d.text((86, h - 58), "请输入标题…", font=small, fill=(160, 160, 160))
    d.rounded_rectangle([80, h - 30, 150, h - 8], radius=5, fill=(40, 160, 90))
    d.text((96, h - 28), "保存", font=small, fill=(255, 255, 255))
    d.rounded_rectangle([160, h - 30, 230, h - 8], radius=5, outline=(120, 120, 120))
    d.text((176, h - 28), "取消", font=small, fill=(60, 60, 60))
    return img


def make_images():
    """Writes the synthetic test images. Returns [(file, description)]."""
    from PIL import Image, ImageDraw
    os.makedirs(IMG_DIR, exist_ok=True)
    out = []

    photo = _photo_like(300, 180, 1)
    photo.save(os.path.join(IMG_DIR, "photo.jpg"), quality=90, subsampling=2)  # 4:2:0
    out.append(("photo.jpg", "non-square RGB JPEG 300x180, 4:2:0, photo-like"))

    # RGBA with semi-transparent areas; colour under transparent pixels is NOT white, so
    # "drop alpha" and "composite on white" give visibly different results.
    base = np.array(_photo_like(160, 120, 2)).astype(np.uint8)
    yy, xx = np.mgrid[0:120, 0:160]
    alpha = np.full((120, 160), 255, np.uint8)
    alpha[:, :40] = 0                                        # fully transparent strip (colour kept)
    alpha[:, 40:100] = (xx[:, 40:100] - 40) * 255 // 60      # horizontal alpha ramp
    alpha[((yy - 90) ** 2 + (xx - 130) ** 2) < 18 ** 2] = 128  # half-transparent disc
    base[:, :40] = (200, 30, 160)                            # magenta hidden behind alpha 0
    Image.fromarray(np.dstack([base, alpha]), "RGBA").save(os.path.join(IMG_DIR, "alpha.png"))
    out.append(("alpha.png", "RGBA PNG 160x120 with transparent/half-transparent areas"))

    # EXIF orientation: the upright picture is a portrait 120x200 with an arrow pointing up.
    upright = _photo_like(120, 200, 3)
    d = ImageDraw.Draw(upright)
    d.polygon([(60, 10), (20, 70), (100, 70)], fill=(255, 0, 0))
    d.rectangle([50, 70, 70, 150], fill=(255, 0, 0))
    # stored pixels such that ImageOps.exif_transpose(stored) == upright
    stores = {6: Image.Transpose.ROTATE_90, 3: Image.Transpose.ROTATE_180, 8: Image.Transpose.ROTATE_270}
    for o, tr in stores.items():
        name = f"exif{o}.jpg"
        upright.transpose(tr).save(os.path.join(IMG_DIR, name), quality=92, exif=_exif_with_orientation(o))
        out.append((name, f"JPEG with EXIF Orientation={o}, stored pixels rotated; upright is 120x200"))

    rng = np.random.RandomState(4)
    yy, xx = np.mgrid[0:100, 0:140].astype(np.float64)
    a16 = np.stack([xx / 139 * 65535, yy / 99 * 65535, (xx + yy) / 238 * 65535], -1)
    a16 = np.clip(a16 + rng.normal(0, 40, a16.shape), 0, 65535).astype(np.uint16)
    _write_png16(os.path.join(IMG_DIR, "rgb16.png"), a16)
    out.append(("rgb16.png", "16-bit RGB PNG 140x100 (written by hand)"))

    pal = _photo_like(130, 90, 5).quantize(colors=32, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    pal.save(os.path.join(IMG_DIR, "palette.png"))
    out.append(("palette.png", "palette (P mode) PNG 130x90, 32 colours, no transparency"))

    frames = []
    for i in range(3):
        f = _photo_like(150, 100, 10 + i)
        ImageDraw.Draw(f).text((10, 10), f"frame {i}", fill=(255, 255, 0))
        frames.append(f.quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE))
    frames[0].save(os.path.join(IMG_DIR, "anim.gif"), save_all=True, append_images=frames[1:],
                   duration=100, loop=0)
    out.append(("anim.gif", "animated GIF 150x100, 3 frames; the first frame is the image"))

    _photo_like(200, 150, 6).save(os.path.join(IMG_DIR, "photo_webp.webp"), quality=80, method=4)
    out.append(("photo_webp.webp", "lossy WebP 200x150"))

    _cjk_screenshot(360, 220).save(os.path.join(IMG_DIR, "cjk_screenshot.png"))
    out.append(("cjk_screenshot.png", "screenshot-like 360x220: Chinese text (WenQuanYi Micro Hei), UI boxes"))

    _photo_like(480, 300, 7).save(os.path.join(IMG_DIR, "large.jpg"), quality=85)
    out.append(("large.jpg", "480x300 JPEG: capped by max_pixels, grid larger than the 8x8 position table"))

    tiny = _photo_like(20, 60, 8)
    tiny.save(os.path.join(IMG_DIR, "tiny.png"))
    out.append(("tiny.png", "20x60 PNG: smaller than 28 px, takes smart_resize's small-image path"))

    _photo_like(110, 170, 9).convert("L").save(os.path.join(IMG_DIR, "gray.png"))
    out.append(("gray.png", "grayscale (L) PNG 110x170"))
    return out


def load_reference_rgb(path):
    """What a browser shows and what transformers' load_image returns: EXIF transpose, then
    PIL convert("RGB") (alpha dropped, NOT composited; palette expanded; 16-bit -> high byte)."""
    from PIL import Image, ImageOps
    im = Image.open(path)
    info = {"pil_mode": im.mode, "pil_format": im.format, "stored_w": im.size[0], "stored_h": im.size[1],
            "exif_orientation": im.getexif().get(0x0112, 1), "n_frames": getattr(im, "n_frames", 1)}
    im = ImageOps.exif_transpose(im)
    return im.convert("RGB"), info


def make_image_processor():
    from transformers import AutoImageProcessor
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        write_json(os.path.join(d, "preprocessor_config.json"), PREPROCESSOR_CONFIG)
        return AutoImageProcessor.from_pretrained(d)


class ResizeRecorder:
    """Wraps the processor's resize to keep the image it produced (before rescale/normalise)."""

    def __init__(self, proc):
        self.proc, self.outputs = proc, []
        self._orig = proc.resize

        def wrapped(*a, **k):
            r = self._orig(*a, **k)
            self.outputs.append(r.clone())
            return r
        proc.resize = wrapped


def run_preprocess(proc, rgb_images):
    """Runs the processor one image at a time (no shape grouping surprises); returns dicts."""
    import torch
    res = []
    rec = ResizeRecorder(proc)
    for im in rgb_images:
        rec.outputs.clear()
        out = proc(images=[im], return_tensors="pt")
        assert len(rec.outputs) == 1
        resized = rec.outputs[0]
        assert resized.dtype == torch.uint8, resized.dtype
        res.append({"pixel_values": out["pixel_values"].float(), "grid": out["image_grid_thw"][0].tolist(),
                    "resized": resized[0].permute(1, 2, 0).contiguous()})
    proc.resize = rec._orig
    return res


def make_preprocess_golden(image_list):
    import torch
    from PIL import Image, ImageOps
    from safetensors.torch import save_file
    from transformers.models.glm46v.image_processing_glm46v import smart_resize

    proc = make_image_processor()
    decoded_dir = os.path.join(FIX, "preprocess", "decoded")
    os.makedirs(decoded_dir, exist_ok=True)
    tensors, cases = {}, []
    for fname, desc in image_list:
        rgb, info = load_reference_rgb(os.path.join(IMG_DIR, fname))
        stem = os.path.splitext(fname)[0]
        if stem in DECODED_FOR:
            rgb.save(os.path.join(decoded_dir, stem + ".png"))   # lossless copy of the decoded RGB
        r = run_preprocess(proc, [rgb])[0]
        h_bar, w_bar = smart_resize(TEMPORAL, rgb.size[1], rgb.size[0], temporal_factor=TEMPORAL, factor=FACTOR,
                                    min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
        rh, rw = r["resized"].shape[:2]
        assert (rh, rw) == (h_bar, w_bar), (fname, rh, rw, h_bar, w_bar)
        if stem in RESIZED_FOR:
            tensors[f"{stem}.resized"] = r["resized"].float().contiguous()
        if stem in PIXEL_VALUES_FOR:
            tensors[f"{stem}.pixel_values"] = r["pixel_values"].contiguous()
        cases.append({
            "stem": stem, "file": fname, "description": desc, **info,
            "width": rgb.size[0], "height": rgb.size[1],
            "resized_h": rh, "resized_w": rw, "grid_thw": r["grid"],
            "n_patches": int(r["pixel_values"].shape[0]), "n_image_tokens": int(np.prod(r["grid"]) // MERGE ** 2),
            "decoded_png": f"decoded/{stem}.png" if stem in DECODED_FOR else None,
            "has_resized": stem in RESIZED_FOR, "has_pixel_values": stem in PIXEL_VALUES_FOR,
        })

    # Alpha handling variants for the RGBA image, so the C++ side can see both behaviours.
    rgba = Image.open(os.path.join(IMG_DIR, "alpha.png"))
    comp = run_preprocess(proc, [rgba])[0]          # PIL RGBA given to the processor: composited on white
    tensors["alpha.composited.resized"] = comp["resized"].float().contiguous()
    white = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba.convert("RGBA"))
    check_comp = run_preprocess(proc, [white.convert("RGB")])[0]
    assert torch.equal(check_comp["pixel_values"], comp["pixel_values"])

    # Decoding path check: transformers decodes path/URL/base64 inputs with torchvision.io (not PIL)
    # when the torchvision backend is active; measure how that differs from the PIL reference.
    decode_check = {}
    try:
        from transformers.image_utils import load_image_as_tensor
        for c in cases:
            try:
                t = load_image_as_tensor(os.path.join(IMG_DIR, c["file"]))
                ref = torch.from_numpy(np.array(load_reference_rgb(os.path.join(IMG_DIR, c["file"]))[0])).permute(2, 0, 1)
                if t.shape != ref.shape or t.dtype != torch.uint8:
                    decode_check[c["stem"]] = f"different: shape {tuple(t.shape)} dtype {t.dtype} vs PIL {tuple(ref.shape)} uint8"
                else:
                    diff = (t.int() - ref.int()).abs()
                    decode_check[c["stem"]] = {"max_abs_diff": int(diff.max()), "n_diff": int((diff > 0).sum())}
            except Exception as e:  # noqa: BLE001 - recorded as a fact, not fatal
                decode_check[c["stem"]] = f"error: {type(e).__name__}: {str(e)[:160]}"
    except ImportError as e:
        decode_check = f"unavailable: {e}"

    header = {
        "format_version": FORMAT_VERSION, "versions": versions(),
        "processor_class": type(proc).__name__, "processor_module": type(proc).__module__,
        "processor_backend": getattr(proc, "backend", None),
        "processor_config": PREPROCESSOR_CONFIG,
        "min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS,
        "resample": "bicubic (torchvision.transforms.v2.functional.resize, antialias=True, on uint8 CHW tensor)",
        "resized_dtype": "uint8 as produced by the processor's resize (stored here as float32 (h, w, 3))",
        "normalize": "fused: float32((x - 255*mean) / (255*std)) via torchvision normalize with mean/std scaled by 1/rescale_factor",
        "reference_decode": "PIL.Image.open -> ImageOps.exif_transpose -> .convert('RGB') (= transformers.image_utils.load_image); "
                            "the RGB PIL image is then passed to the processor",
        "facts": {
            "rgba_via_load_image": "alpha DROPPED (plain PIL convert('RGB'); colour under transparent pixels shows). This is the reference (alpha.*).",
            "rgba_pil_given_to_processor": "composited over white (alpha_composite on (255,255,255,255)) in convert_to_rgb_pil; see alpha.composited.*",
            "palette": "PIL convert('RGB') expands the palette; a palette image with a tRNS/transparency entry given to the processor directly would be composited on white",
            "png16": "Pillow opens 16-bit RGB PNG as mode RGB keeping the HIGH byte of each sample (v >> 8, not rounding)",
            "grayscale_L": "convert('RGB') replicates the gray value into R, G and B",
            "gif": "Image.open gives the first frame; convert('RGB') expands its palette",
            "exif": "orientation applied by ImageOps.exif_transpose before conversion; width/height here are after it",
            "tiny": "smart_resize scales H,W < 28 up by max(28/H, 28/W) with int() truncation before rounding",
            "torchvision_decode_path": "transformers 5.23 decodes image paths/URLs/base64 with torchvision.io.decode_image(mode=RGB, apply_exif_orientation=True) "
                                       "when torchcodec is absent; decode_check compares it with the PIL reference",
        },
        "decode_check": decode_check,
    }
    write_json(os.path.join(FIX, "preprocess", "cases.json"), {"header": header, "cases": cases})
    save_file(tensors, os.path.join(FIX, "preprocess", "golden.safetensors"),
              metadata={"format_version": str(FORMAT_VERSION)})
    os.chmod(os.path.join(FIX, "preprocess", "golden.safetensors"), 0o644)
    return cases


# ----------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", default=["images", "tokenizer", "models", "transparency", "prompts"])
    args = ap.parse_args()
    random.seed(SEED)
    np.random.seed(SEED)
    if "images" in args.only:
        import shutil
        for d in (IMG_DIR, os.path.join(FIX, "preprocess")):   # no stale files from older runs
            shutil.rmtree(d, ignore_errors=True)
        imgs = make_images()
        cases = make_preprocess_golden(imgs)
        for c in cases:
            print(f"{c['file']:20s} {c['width']}x{c['height']} -> {c['resized_w']}x{c['resized_h']} grid {c['grid_thw']}")
    if "tokenizer" in args.only:
        from make_tokenizer import make_tokenizer_fixtures
        make_tokenizer_fixtures(FIX)
    if "models" in args.only:
        from make_models import make_model_fixtures
        make_model_fixtures(FIX)
    if "transparency" in args.only:
        from make_transparency import make_transparency_fixtures
        make_transparency_fixtures()
    if "prompts" in args.only:
        from make_prompt_fixtures import make_prompt_fixtures
        make_prompt_fixtures()
    for dirpath, _, files in os.walk(FIX):   # save_pretrained writes 0600 files
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o644)


if __name__ == "__main__":
    main()
