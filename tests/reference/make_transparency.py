"""make_transparency.py: images with every kind of transparency a blog serves, and what transformers'
GLM-4.6V processor makes of them (tests/fixtures/images/{trns_*,la.png,alpha_*.webp},
tests/fixtures/preprocess/transparency/, tests/fixtures/models/tiny-flash/golden-transparency/).

Reference path (as for every other fixture): PIL.Image.open -> ImageOps.exif_transpose ->
.convert("RGB") (transformers' load_image) -> the default GLM-4.6V processor of transformers 5.23
(torchvision backend). Pillow keeps a colour key (PNG tRNS of a palette with one transparent index,
of a gray or RGB image; a GIF transparent index) through convert("RGB") as info["transparency"], and
the processor's convert_to_rgb then composites the pixels of that colour onto white. Alpha channels
(RGBA, LA, WebP alpha) and a palette tRNS with partial alpha (pngquant) are dropped by convert("RGB")
and the colour underneath shows. Each image's `decoded` reference is the processor's own RGB view
(convert_to_rgb of the load_image result), checked here to give the processor's exact pixel values.

Run after the other parts (make_fixtures.py runs it last); touches no other fixture.
Leaves out: animated PNG/WebP frames past the first, video.
"""
import io
import json
import os
import shutil
import struct
import zlib

import numpy as np

import make_fixtures as mf

PRE_DIR = os.path.join(mf.FIX, "preprocess", "transparency")


def _chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def _raw_png(w, h, bit_depth, colour_type, rows, plte=None, trns=None):
    """A PNG written by hand (Pillow cannot write 16-bit RGB, 16-bit gray with a key, or a tRNS
    that points past PLTE)."""
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, colour_type, 0, 0, 0))
    if plte is not None:
        out += _chunk(b"PLTE", plte)
    if trns is not None:
        out += _chunk(b"tRNS", trns)
    out += _chunk(b"IDAT", zlib.compress(b"".join(b"\x00" + r for r in rows), 9)) + _chunk(b"IEND", b"")
    return out


def _pack(row, bits):
    acc, n, out = 0, 0, bytearray()
    for v in row:
        acc, n = (acc << bits) | int(v), n + bits
        if n == 8:
            out.append(acc)
            acc, n = 0, 0
    if n:
        out.append(acc << (8 - n))
    return bytes(out)


def _gif_frame_on_canvas(cw, ch, x, y, idx, table, transparent):
    """GIF89a with a frame smaller than the logical screen, written by hand: Pillow fills the rest
    of the canvas with the transparent index. The LZW stream sends a clear code before every pixel,
    so the code width never grows (valid, just not compact)."""
    bits = max(1, int(np.ceil(np.log2(len(table) // 3))))
    table = table + bytes(3 * (2 ** bits) - len(table))
    out = b"GIF89a" + struct.pack("<HH", cw, ch) + bytes([0x80 | (bits - 1), 0, 0]) + table
    out += b"\x21\xf9\x04\x01\x00\x00" + bytes([transparent]) + b"\x00"
    fh, fw = idx.shape
    out += b"," + struct.pack("<HHHH", x, y, fw, fh) + b"\x00"
    mcs = max(2, int(idx.max()).bit_length(), bits)
    clear, eoi, width = 1 << mcs, (1 << mcs) + 1, mcs + 1
    acc, n, data = 0, 0, bytearray()
    for code in [c for v in idx.flatten() for c in (clear, int(v))] + [eoi]:
        acc, n = acc | (code << n), n + width
        while n >= 8:
            data.append(acc & 0xFF)
            acc, n = acc >> 8, n - 8
    if n:
        data.append(acc & 0xFF)
    out += bytes([mcs])
    for i in range(0, len(data), 255):
        out += bytes([len(data[i:i + 255])]) + data[i:i + 255]
    return out + b"\x00;"


def make_images():
    """Writes the images; returns [(file, description, model_case)]: model_case says whether the
    image is large enough to be worth a model golden (the quirk images are a few pixels)."""
    from PIL import Image, ImageDraw
    out = []

    def save(name, data_or_image, desc, fmt=None, model=True, **kw):
        path = os.path.join(mf.IMG_DIR, name)
        if isinstance(data_or_image, bytes):
            with open(path, "wb") as f:
                f.write(data_or_image)
        else:
            data_or_image.save(path, fmt, **kw)
        out.append((name, desc, model))

    # Palette PNG with one transparent index (Pillow writes tRNS ff..ff 00): a logo-like picture on a
    # magenta background that is the transparent colour; a second palette entry with the same
    # magenta (not transparent itself) turns white too, because the processor matches colours.
    base = mf._photo_like(140, 100, 21).quantize(colors=30, method=Image.Quantize.MEDIANCUT,
                                                  dither=Image.Dither.NONE)
    idx = np.array(base)
    yy, xx = np.mgrid[0:100, 0:140]
    idx[:, :28] = 30
    idx[((yy - 60) ** 2 + (xx - 100) ** 2) < 22 ** 2] = 30
    idx[8:20, 40:90] = 31
    pal = base.getpalette()[:90] + [230, 0, 200, 230, 0, 200]
    im = Image.fromarray(idx.astype(np.uint8), "P")
    im.putpalette(pal)
    save("trns_palette.png", im, "palette PNG 140x100, index 30 transparent (tRNS), index 31 the same colour",
         transparency=30)

    # pngquant-style palette PNG: partial alpha per entry -> convert("RGB") drops it (colours show).
    q = mf._photo_like(120, 90, 22).quantize(colors=24, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    alphas = bytes([0, 40, 90, 128, 200] + [255] * 19)
    save("trns_pngquant.png", q, "palette PNG 120x90 with partial alpha per entry (pngquant-like tRNS)",
         transparency=alphas)

    # RGB PNG with a colour key: a screenshot-like image on a key-coloured backdrop.
    rgb = mf._photo_like(130, 96, 23)
    d = ImageDraw.Draw(rgb)
    d.rectangle([0, 0, 129, 14], fill=(12, 34, 56))
    d.rectangle([90, 50, 129, 95], fill=(12, 34, 56))
    save("trns_rgb.png", rgb, "RGB PNG 130x96 with a tRNS colour key (12, 34, 56)", transparency=(12, 34, 56))

    # Gray PNG with a key.
    gray = mf._photo_like(100, 124, 24).convert("L")
    ImageDraw.Draw(gray).ellipse([10, 10, 60, 70], fill=77)
    save("trns_gray.png", gray, "gray (L) PNG 100x124 with a tRNS gray key 77", transparency=77)

    # GIF icon: transparent background index, as GIF icons are.
    icon = Image.new("P", (110, 90), 0)
    icon.putpalette([0, 128, 128] + [255, 255, 255] + [220, 40, 40] + [30, 30, 160] + [250, 200, 0] + [0] * 3 * 251)
    di = ImageDraw.Draw(icon)
    di.ellipse([10, 8, 80, 78], fill=2, outline=3)
    di.rectangle([60, 40, 100, 85], fill=4)
    di.polygon([(20, 80), (50, 20), (95, 75)], outline=1)
    save("trns_icon.gif", icon, "GIF 110x90, background index 0 transparent (GIF89a graphic control)",
         transparency=0)

    # Gray + alpha and WebP alpha: alpha dropped by convert("RGB"), never composited.
    la_base = np.array(mf._photo_like(96, 80, 25).convert("L"))
    la_alpha = np.tile(np.linspace(0, 255, 96).astype(np.uint8), (80, 1))
    la_alpha[:, :20] = 0
    la_base[:, :20] = 40
    Image.fromarray(np.dstack([la_base, la_alpha]), "LA").save(os.path.join(mf.IMG_DIR, "la.png"))
    out.append(("la.png", "gray+alpha (LA) PNG 96x80: alpha 0 strip over gray 40, alpha ramp", True))
    rgba = np.dstack([np.array(mf._photo_like(120, 84, 26)), np.full((84, 120), 255, np.uint8)])
    rgba[:, :30, :3] = (200, 30, 160)
    rgba[:, :30, 3] = 0
    rgba[40:, 60:, 3] = 100
    save("alpha_webp.webp", Image.fromarray(rgba, "RGBA"), "lossless WebP 120x84 with alpha (exact RGB kept)",
         "WEBP", lossless=True, exact=True)
    save("alpha_lossy.webp", Image.fromarray(rgba, "RGBA"), "lossy WebP 120x84 with an alpha channel",
         "WEBP", quality=80, method=4)

    # Quirks of Pillow 13 the decoder must reproduce (a few pixels each; decoded reference only).
    g16 = np.array([[0, 1, 255, 256, 1000, 65535, 300, 0]] * 4, np.uint16)
    save("trns_gray16.png", _raw_png(8, 4, 16, 0, [r.astype(">u2").tobytes() for r in g16], trns=struct.pack(">H", 256)),
         "16-bit gray PNG, key 256: Pillow keys red (256 & 0xff, 0, 0) -> the black pixels turn white", model=False)
    g1 = np.array([[0, 1, 1, 0, 1, 0, 0, 1]] * 4)
    save("trns_gray1.png", _raw_png(8, 4, 1, 0, [_pack(r, 1) for r in g1], trns=struct.pack(">H", 0)),
         "1-bit gray PNG, key 0: the black pixels turn white", model=False)
    g4 = np.array([[0, 5, 15, 1, 5, 3, 15, 0]] * 4)
    save("trns_gray4.png", _raw_png(8, 4, 4, 0, [_pack(r, 4) for r in g4], trns=struct.pack(">H", 85)),
         "4-bit gray PNG, key 85: compared with the scaled samples, so sample 5 (= 85) turns white", model=False)
    c16 = np.zeros((4, 8, 3), np.uint16)
    c16[:, :4] = [(10 << 8) | 7, (20 << 8) | 7, (30 << 8) | 7]
    c16[:, 4:] = [(7 << 8) | 10, (7 << 8) | 20, (7 << 8) | 30]
    save("trns_rgb16.png", _raw_png(8, 4, 16, 2, [r.astype(">u2").tobytes() for r in c16],
                                    trns=struct.pack(">HHH", (99 << 8) | 10, (99 << 8) | 20, (99 << 8) | 30)),
         "16-bit RGB PNG: key low bytes (10, 20, 30) match the pixels whose HIGH bytes are (10, 20, 30)", model=False)
    pidx = np.array([[0, 1, 2, 3, 4, 5, 7, 6]] * 4, np.uint8)
    save("trns_past_plte.png", _raw_png(8, 4, 8, 3, [r.tobytes() for r in pidx], plte=bytes([10, 20, 30, 200, 0, 0,
                                        0, 200, 0, 0, 0, 200, 50, 50, 50, 0, 0, 0][:15]), trns=b"\xff" * 7 + b"\x00"),
         "palette PNG with 5 PLTE entries, pixels and the transparent index (7) past them: all black -> white",
         model=False)
    gidx = np.array([[0, 1, 2, 3, 5, 6, 1, 0]] * 3, np.uint8)
    save("trns_offset.gif", _gif_frame_on_canvas(14, 7, 3, 2, gidx, bytes([10, 20, 30, 200, 0, 0, 0, 200, 0, 10, 20, 30]), 1),
         "GIF: 8x3 frame at (3,2) on a 14x7 screen, transparent index 1, indices past the 4-entry table",
         model=False)
    return out


def processor_view(path):
    """(load_image result, the processor's RGB view of it, colour key Pillow kept or None)."""
    from transformers.image_transforms import convert_to_rgb
    rgb, info = mf.load_reference_rgb(path)
    view = convert_to_rgb(rgb, return_numpy=True)
    key = rgb.info.get("transparency")
    info["colour_key"] = list(key) if isinstance(key, tuple) else key
    return rgb, view, info


def make_preprocess_golden(images):
    import torch
    from PIL import Image
    from safetensors.torch import save_file

    shutil.rmtree(PRE_DIR, ignore_errors=True)
    os.makedirs(os.path.join(PRE_DIR, "decoded"))
    proc = mf.make_image_processor()
    tensors, cases = {}, []
    for fname, desc, model_case in images:
        stem = os.path.splitext(fname)[0]
        rgb, view, info = processor_view(os.path.join(mf.IMG_DIR, fname))
        plain = np.array(rgb)
        Image.fromarray(view, "RGB").save(os.path.join(PRE_DIR, "decoded", stem + ".png"))
        r = mf.run_preprocess(proc, [rgb])[0]
        # The decoded reference is exactly what the processor sees: same pixel values from it.
        r2 = mf.run_preprocess(proc, [Image.fromarray(view, "RGB")])[0]
        assert torch.equal(r["pixel_values"], r2["pixel_values"]), fname
        tensors[f"{stem}.resized"] = r["resized"].float().contiguous()
        cases.append({
            "stem": stem, "file": fname, "description": desc, **info,
            "width": rgb.size[0], "height": rgb.size[1],
            "pixels_turned_white": int((view != plain).any(-1).sum()),
            "resized_h": int(r["resized"].shape[0]), "resized_w": int(r["resized"].shape[1]),
            "grid_thw": r["grid"], "decoded_png": f"decoded/{stem}.png", "model_case": model_case,
        })
    header = {
        "format_version": mf.FORMAT_VERSION, "versions": mf.versions(),
        "processor_class": type(proc).__name__, "processor_config": mf.PREPROCESSOR_CONFIG,
        "min_pixels": mf.MIN_PIXELS, "max_pixels": mf.MAX_PIXELS,
        "reference_decode": "PIL.Image.open -> ImageOps.exif_transpose -> .convert('RGB') (load_image), then the "
                            "processor's convert_to_rgb: decoded/<stem>.png is that RGB (what the processor resizes)",
        "colour_key": "Pillow's info['transparency'] after convert('RGB'), null when none; pixels of exactly that "
                      "colour are composited onto white by convert_to_rgb (pixels_turned_white counts them)",
        "resized": "<stem>.resized: the processor's uint8 resize output as float32 (h, w, 3)",
    }
    mf.write_json(os.path.join(PRE_DIR, "cases.json"), {"header": header, "cases": cases})
    save_file(tensors, os.path.join(PRE_DIR, "golden.safetensors"), metadata={"format_version": str(mf.FORMAT_VERSION)})
    return cases


MODEL_CASES = {
    "colour_key_palette": dict(system=None, user="Describe this logo.", images=["trns_palette.png"]),
    "colour_key_gif_and_rgb": dict(system="You write alt text.", user="Alt text for both images.",
                                   images=["trns_icon.gif", "trns_rgb.png"]),
    "colour_key_gray": dict(system=None, user="Alt text for this grayscale picture.", images=["trns_gray.png"]),
    "alpha_dropped": dict(system=None, user="Describe these.", images=["trns_pngquant.png", "la.png", "alpha_webp.webp"]),
}


def make_model_golden():
    """tiny-flash on the colour-key images: the same records as golden/cases.json, in their own
    directory so the existing goldens stay byte-identical."""
    import torch
    from PIL import Image
    from transformers import Glm4vForConditionalGeneration
    import make_models as mm

    torch.set_num_threads(2)
    mdir = os.path.join(mf.FIX, "models", "tiny-flash")
    gdir = os.path.join(mdir, "golden-transparency")
    shutil.rmtree(gdir, ignore_errors=True)
    model = Glm4vForConditionalGeneration.from_pretrained(mdir, attn_implementation="eager",
                                                          dtype=torch.float32).eval()
    processor = mm.load_processor(mdir)
    sp = mm.special_ids(processor.tokenizer)
    eos = mm.generation_config(sp)["eos_token_id"]
    tensors, cases = {}, []

    def pv_store(name, pv, t):
        t[f"{name}.pixel_values"] = pv
        return "models/tiny-flash/golden-transparency/golden.safetensors", f"{name}.pixel_values"

    for cname, cdef in MODEL_CASES.items():
        msgs, prompt, inputs = mm.prepare_inputs(processor, cdef)
        res = mm.run_case(model, inputs, cname, tensors, pv_store=pv_store)
        toks, margins = mm.greedy(model, inputs, mm.GREEDY_STEPS)
        grids = inputs["image_grid_thw"].tolist()
        rec = {"name": cname, "system": cdef["system"], "user": cdef["user"], "images": cdef["images"],
               "prompt": prompt, "prompt_ids": inputs["input_ids"][0].tolist(), "image_grid_thw": grids,
               "n_image_tokens": [int(np.prod(g)) // mf.MERGE ** 2 for g in grids],
               "position_ids": res["position_ids"], "rope_delta": res["rope_delta"],
               "pixel_values_file": res["pixel_values_file"], "pixel_values_key": res["pixel_values_key"],
               "greedy_tokens": toks}
        rec["greedy_min_margin"] = min(margins)
        rec["greedy_margins"] = [round(x, 6) for x in margins]
        rec["generate_agrees_for"] = mm.generate_check(model, inputs, toks, eos)
        rec["greedy_text"] = processor.tokenizer.decode(toks, skip_special_tokens=False)
        # What a decoder that ignores the colour key would be compared against: the same images
        # without info["transparency"] (the key's colour shows instead of white).
        plain = [{"role": m["role"], "content": [dict(c, image=Image.fromarray(np.array(c["image"])))
                                                 if c.get("type") == "image" else c for c in m["content"]]}
                 for m in msgs]
        plain_inputs = processor.apply_chat_template(plain, add_generation_prompt=True, enable_thinking=False,
                                                     tokenize=True, return_dict=True, return_tensors="pt")
        rec["greedy_tokens_key_ignored"] = mm.greedy(model, plain_inputs, mm.GREEDY_STEPS)[0]
        cases.append(rec)
        same = sum(a == b for a, b in zip(toks, rec["greedy_tokens_key_ignored"]))
        print(f"  {cname}: {len(rec['prompt_ids'])} prompt ids, grids {rec['image_grid_thw']}, "
              f"min margin {rec['greedy_min_margin']:.4f}, {same}/{len(toks)} tokens same with the key ignored")
    hdr = mm.header({"model": "tiny-flash", "dtype": "float32", "special_tokens": sp, "eos_token_ids": eos,
                     "images": "PIL images from load_image (convert('RGB') keeps a colour key in info, "
                               "the processor composites it onto white)"})
    os.makedirs(gdir)
    mf.write_json(os.path.join(gdir, "cases.json"), {"header": hdr, "cases": cases})
    from safetensors.torch import save_file
    save_file(tensors, os.path.join(gdir, "golden.safetensors"), metadata={"format_version": str(mf.FORMAT_VERSION)})


def make_transparency_fixtures():
    os.makedirs(mf.IMG_DIR, exist_ok=True)
    images = make_images()
    cases = make_preprocess_golden(images)
    for c in cases:
        print(f"{c['file']:20s} {c['pil_mode']:5s} key {c['colour_key']!s:16s} white {c['pixels_turned_white']:5d}"
              f" -> {c['resized_w']}x{c['resized_h']} grid {c['grid_thw']}")
    make_model_golden()
