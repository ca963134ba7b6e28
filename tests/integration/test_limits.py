"""Bad input is refused with OpenAI-shaped errors and the status codes of
DESIGN.md, before anything reaches vlmd."""
import base64
import functools
import http.client
import json
import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import chat_body, data_url, error_of


def post_chat(stack, body, **kw):
    return stack.post("/v1/chat/completions", body, **kw)


def png_header(width, height):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk
            + struct.pack(">I", zlib.crc32(chunk)) + b"\x00" * 64)


def image_chat(raw, mime="image/png"):
    url = "data:%s;base64,%s" % (mime, base64.b64encode(raw).decode())
    return chat_body(image=None) | {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}},
        {"type": "text", "text": "hi"}]}]}


def test_body_over_client_max_body_size_is_413(stack):
    status, _, _ = post_chat(stack, "x" * (5 * 1024 * 1024),
                             headers={"Content-Type": "application/json"})
    assert status == 413


def test_invalid_json(stack):
    status, _, body = post_chat(stack, '{"messages": [', headers={"Content-Type": "application/json"})
    assert status == 400
    assert error_of(body)["code"] == "invalid_json"


def test_deep_nesting_refused_before_parsing(stack):
    deep = '{"messages": ' + "[" * 5000 + "]" * 5000 + "}"
    status, _, body = post_chat(stack, deep, headers={"Content-Type": "application/json"})
    assert status == 400
    assert error_of(body)["code"] == "json_too_deep"


def test_bad_base64(stack):
    body = chat_body(image=None)
    body["messages"][0]["content"].insert(0, {"type": "image_url", "image_url": {
        "url": "data:image/png;base64,iVBORw0KGgo*not-base64*"}})
    status, _, data = post_chat(stack, body)
    assert status == 400
    err = error_of(data)
    assert err["code"] == "invalid_base64"
    assert err["param"] == "messages.content.image_url"


def test_unsupported_image_type_is_415(stack):
    status, _, body = post_chat(stack, image_chat(b"BM" + b"\x00" * 100, "image/bmp"))
    assert status == 415
    assert error_of(body)["code"] == "unsupported_image_type"


def test_non_image_data_url_is_415(stack):
    status, _, body = post_chat(stack, image_chat(b"hello", "text/plain"))
    assert status == 415


def test_pixel_bomb_refused_from_header(stack):
    # 100000 x 100000 would be 30 GB decoded; only the header is sent
    status, _, body = post_chat(stack, image_chat(png_header(100000, 100000)))
    assert status == 413
    err = error_of(body)
    assert err["code"] == "image_too_many_pixels"
    assert "100000x100000" in err["message"]


def test_truncated_image_header(stack):
    status, _, body = post_chat(stack, image_chat(b"\x89PNG\r\n\x1a\n\x00\x00"))
    assert status == 400
    assert error_of(body)["code"] == "invalid_image"


def test_too_many_images(stack):
    body = chat_body(image=None)
    body["messages"][0]["content"] = [
        {"type": "image_url", "image_url": {"url": data_url("tiny.png")}} for _ in range(4)]
    status, _, data = post_chat(stack, body)
    assert status == 400
    assert error_of(data)["code"] == "too_many_images"


def test_max_tokens_over_limit(stack):
    status, _, body = post_chat(stack, chat_body(max_tokens=100000))
    assert status == 400
    err = error_of(body)
    assert err["param"] == "max_tokens"
    assert err["code"] == "max_tokens_too_large"


def test_default_max_tokens_when_the_request_names_none(stack):
    # The default used to be min(vlm_max_tokens, 512) hidden in the parser; it is the
    # directive vlm_default_max_tokens now, and a location that lowers vlm_max_tokens
    # below the inherited default lowers the default with it.
    body = chat_body()
    del body["max_tokens"]
    for path, limit in (("/short/v1/chat/completions", 3), ("/low/v1/chat/completions", 2)):
        status, _, data = stack.post(path, body)
        assert status == 200, data
        assert 0 < json.loads(data)["usage"]["completion_tokens"] <= limit, data


def test_prompt_over_limit_is_413(stack):
    status, _, body = post_chat(stack, chat_body(text="x" * 9000, image=None))
    assert status == 413
    assert error_of(body)["code"] == "prompt_too_large"


def test_unsupported_parameter_is_400(stack):
    status, _, body = post_chat(stack, chat_body(tools=[{"type": "function"}]))
    assert status == 400
    err = error_of(body)
    assert err["code"] == "unsupported_parameter" and err["param"] == "tools"


def test_temperature_out_of_range(stack):
    status, _, body = post_chat(stack, chat_body(temperature=5))
    assert status == 400
    assert error_of(body)["param"] == "temperature"


def test_wrong_content_type_is_415(stack):
    status, _, body = post_chat(stack, "hello", headers={"Content-Type": "text/plain"})
    assert status == 415


def test_remote_images_off_by_default(stack):
    body = chat_body(image=None)
    body["messages"][0]["content"].insert(0, {"type": "image_url", "image_url": {
        "url": "http://169.254.169.254/latest/meta-data"}})
    status, _, data = post_chat(stack, body)
    assert status == 400
    assert error_of(data)["code"] == "remote_images_disabled"


def test_duplicate_keys_rejected(stack):
    status, _, body = post_chat(stack, '{"max_tokens": 1, "max_tokens": 2, "messages": []}',
                                headers={"Content-Type": "application/json"})
    assert status == 400


def test_image_in_temp_file_body_is_read(stack):
    # a body larger than client_body_buffer_size (64k) goes to a temp file;
    # the pixel bomb must still be found in it
    body = image_chat(png_header(100000, 100000))
    body["messages"][0]["content"][1]["text"] = "y" * 7000
    body["messages"].insert(0, {"role": "system", "content": "z" * 100})
    body["user"] = "u" * 100000
    status, _, data = post_chat(stack, body)
    assert status == 413
    assert error_of(data)["code"] == "image_too_many_pixels"


def test_error_quoting_non_utf8_client_bytes_still_answers(stack):
    # A message that quotes client bytes which are not UTF-8 (found by fuzz_ngx_body) used to
    # make the JSON encoder refuse it, and the client got no answer at all.
    boundary = b"XyZ"
    body = (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="\xff\xfe"\r\n\r\nx\r\n'
            b"--" + boundary + b"--\r\n")
    status, _, data = stack.post("/v1/alt-text", body, headers={
        "Content-Type": "multipart/form-data; boundary=XyZ"})
    assert status == 400, data
    assert error_of(data)["message"]
    status, _, data = post_chat(stack, json.dumps(chat_body() | {"model": "a" + "é" * 150}),
                                headers={"Content-Type": "application/json"})
    assert status == 404, data
    assert "model" in error_of(data)["message"]


# ---- images whose first header understates what vlmd decodes (issue 12) ----
# The module used to read one header per format: a GIF's logical screen, the
# first thing after a JPEG marker that looked like a segment, a PNG's IHDR
# without its data, a WebP's VP8X canvas without its frames. Each image below
# lies in one of those places; it must be refused by nginx, and vlmd must not
# spend a byte of memory or a millisecond of CPU on it.

def gif_lzw_flat(n_pixels, min_code=2):
    """LZW data (sub-blocks) for n_pixels of colour 0, coded as giflib's
    encoder codes a flat run: each code one pixel longer than the last, a
    clear code when the 4096-entry table is full. 9 Mpx take 7 KB."""
    clear, eoi = 1 << min_code, (1 << min_code) + 1
    out, acc, nacc = bytearray(), 0, 0
    state = {"next": eoi + 1, "bits": min_code + 1}

    def emit(code):
        nonlocal acc, nacc
        acc |= code << nacc
        nacc += state["bits"]
        while nacc >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nacc -= 8
        if state["next"] >= 1 << state["bits"] and code <= 4095:
            state["bits"] += 1

    def code_of(run):
        return 0 if run == 1 else eoi - 1 + run

    emit(clear)
    longest, run, left = 1, 1, n_pixels - 1
    while left > 0:
        step = min(longest - run, left)
        run += step
        left -= step
        if left == 0:
            break
        emit(code_of(run))          # the next pixel does not extend the run
        left -= 1
        if state["next"] >= 4095:
            emit(clear)
            state["next"], state["bits"], longest = eoi + 1, min_code + 1, 1
        else:
            state["next"] += 1
            longest = run + 1
        run = 1
    emit(code_of(run))
    emit(eoi)
    if nacc:
        out.append(acc & 0xFF)
    blocks = bytearray([min_code])
    for i in range(0, len(out), 255):
        blocks += bytes([len(out[i:i + 255])]) + out[i:i + 255]
    return bytes(blocks + b"\x00")


def gif(screen, frames):
    """GIF89a with a 4-colour global table; frames: (left, top, width, height)."""
    data = b"GIF89a" + struct.pack("<HHBBB", screen[0], screen[1], 0x81, 0, 0)
    data += b"\x00" * 6 + b"\xff" * 6
    for left, top, width, height in frames:
        data += b"," + struct.pack("<HHHHB", left, top, width, height, 0)
        data += gif_lzw_flat(width * height)
    return data + b";"


def jpeg_flat_gray(width, height):
    """A baseline greyscale JPEG that decodes to flat grey: one quantisation
    table, one-code Huffman tables, two zero bits per 8x8 block."""
    def seg(marker, body):
        return b"\xff" + bytes([marker]) + struct.pack(">H", len(body) + 2) + body
    one_code = b"\x01" + b"\x00" * 15 + b"\x00"      # a 1-bit code for symbol 0
    bits = 2 * ((width + 7) // 8) * ((height + 7) // 8)
    data = b"\x00" * (bits // 8) + (bytes([0xFF >> (bits % 8)]) if bits % 8 else b"")
    return (b"\xff\xd8" + seg(0xDB, b"\x00" + b"\x01" * 64)
            + seg(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
            + seg(0xC4, b"\x00" + one_code + b"\x10" + one_code)
            + seg(0xDA, b"\x01\x01\x00\x00\x3f\x00") + data + b"\xff\xd9")


# ---- documented limits at their boundary ---------------------------------
# With conf/nginx-vlm.conf as shipped (the `example` fixture): every limit its
# comments and README document, N accepted and N + 1 refused, on every
# endpoint it applies to. Issue 12: "vlm_max_images 8" answered 400
# request_too_large for 8 images (even 150-byte PNGs), because the IPC put
# each image and the body in its own arena region and the client library
# frees at most 8 with a request.

MIB = 1024 * 1024


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def webp(chunks):
    body = b"WEBP"
    for kind, data in chunks:
        body += struct.pack("<4sI", kind, len(data)) + data + b"\x00" * (len(data) & 1)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def vp8x(flags, width, height):
    return struct.pack("<I", flags) + struct.pack("<I", width - 1)[:3] + struct.pack("<I", height - 1)[:3]


def vp8l(width, height):
    """A lossless bitstream header: signature, 14-bit width-1 and height-1."""
    return b"\x2f" + struct.pack("<I", (width - 1) | (height - 1) << 14) + b"\x00" * 8


def vlmd_engine_counters(stack):
    return {k: v for k, v in stack.vlmd_stats().items() if "request" in k or "token" in k}


def vlmd_cpu_seconds(stack):
    with open("/proc/%d/stat" % stack.vlmd.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def assert_refused_before_vlmd(stack, raw, mime, status, code, words=""):
    before = vlmd_engine_counters(stack)
    got, _, body = post_chat(stack, image_chat(raw, mime))
    assert got == status, body
    err = error_of(body)
    assert err["code"] == code and words in err["message"], err
    assert vlmd_engine_counters(stack) == before, "vlmd saw the image"


def test_gif_frame_larger_than_its_screen_is_413_before_vlmd(stack):
    # The attack: a 1x1 logical screen passed the pixel limit while
    # vlmd decoded the first frame, 3000x3000 here (9 Mpx against the 4 Mpx
    # limit) in 7 KB, onto a canvas grown to hold it. Eight at once cost
    # vlmd seconds of CPU and hundreds of MB.
    raw = gif((1, 1), [(0, 0, 3000, 3000)])
    assert len(raw) < 10000
    before, cpu = vlmd_engine_counters(stack), vlmd_cpu_seconds(stack)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post_chat(stack, image_chat(raw, "image/gif")), range(8)))
    for status, _, body in answers:
        assert status == 413, body
        err = error_of(body)
        assert err["code"] == "image_too_many_pixels" and "3000x3000" in err["message"], err
    assert vlmd_engine_counters(stack) == before, "vlmd saw the image"
    assert vlmd_cpu_seconds(stack) - cpu < 0.5
    # the limit is on what is decoded, not on the frame: a frame that sticks
    # out of a small screen, but fits the limit, is decoded as before
    status, _, body = post_chat(stack, image_chat(gif((5, 3), [(1, 1, 17, 9)]), "image/gif"))
    assert status == 200, body


def test_gif_later_frame_larger_than_its_screen_is_413(stack):
    # vlmd decodes only the first frame, but a decoder that composites the
    # others would grow the canvas for this one: refused from its descriptor.
    raw = gif((1, 1), [(0, 0, 1, 1), (0, 0, 3000, 3000)])
    assert_refused_before_vlmd(stack, raw, "image/gif", 413, "image_too_many_pixels", "3000x3000")


def test_jpeg_frame_hidden_from_the_marker_walk_is_400(stack):
    # libjpeg skips "ff 00" and any bytes that are not a marker; the module
    # took "ff 00" for a segment and skipped its "length", jumping over the
    # 3000x3000 frame libjpeg decodes to a 16x16 decoy.
    hidden = jpeg_flat_gray(3000, 3000)[2:]
    raw = (b"\xff\xd8\xff\x00" + struct.pack(">H", len(hidden) + 2) + hidden
           + jpeg_flat_gray(16, 16)[2:])
    assert_refused_before_vlmd(stack, raw, "image/jpeg", 400, "invalid_image")


def test_png_with_too_little_image_data_is_400(stack):
    # 1900x2000 RGBA16 is under the pixel limit, but vlmd allocated its 30 MB
    # of rows before libpng found that 1 KB of IDAT cannot fill them (deflate
    # expands at most 1032:1).
    ihdr = struct.pack(">IIBBBBB", 1900, 2000, 16, 6, 0, 0, 0)
    raw = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
           + png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000000)[:1024]) + png_chunk(b"IEND", b""))
    assert_refused_before_vlmd(stack, raw, "image/png", 400, "invalid_image")


def test_webp_frame_larger_than_its_canvas_is_400(stack):
    # A VP8X canvas of 64x64 with a 3000x3000 bitstream, and an animation
    # whose first frame does not fit its canvas: libwebp and vlmd refuse
    # both, now nginx does first.
    still = webp([(b"VP8X", vp8x(0, 64, 64)), (b"VP8L", vp8l(3000, 3000))])
    assert_refused_before_vlmd(stack, still, "image/webp", 400, "invalid_image")
    frame = (b"\x00" * 6 + struct.pack("<I", 2999)[:3] * 2 + b"\x64\x00\x00\x00"
             + struct.pack("<4sI", b"VP8L", 13) + vp8l(3000, 3000) + b"\x00")
    animated = webp([(b"VP8X", vp8x(0x02, 64, 64)), (b"ANIM", b"\x00" * 6), (b"ANMF", frame)])
    assert_refused_before_vlmd(stack, animated, "image/webp", 400, "invalid_image")


@functools.lru_cache(maxsize=None)
def real_png(width, height, size=None):
    """A decodable black PNG; with size, padded to exactly that many bytes
    with private ancillary chunks, which decoders skip."""
    head = (b"\x89PNG\r\n\x1a\n"
            + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * ((width * 3 + 1) * height), 9)))
    end = png_chunk(b"IEND", b"")
    pad = b""
    if size is not None:
        left = size - len(head) - len(end)
        while left > 0:
            n = min(left - 12, MIB)
            if left - (n + 12) in range(1, 12):   # never leave less than a chunk
                n -= 12
            pad += png_chunk(b"vlMp", b"\x00" * n)
            left -= n + 12
        assert left == 0
    return head + pad + end


def b64_url(raw):
    return "data:image/png;base64," + base64.b64encode(raw).decode()


def images_body(api, urls, **kw):
    """A body for api with these image data URLs (alt text takes one)."""
    if api == "chat":
        body = chat_body(image=None, max_tokens=1, **kw)
        body["messages"][0]["content"][:0] = [
            {"type": "image_url", "image_url": {"url": u}} for u in urls]
        return "/v1/chat/completions", body
    if api == "alt":
        assert len(urls) == 1
        return "/v1/alt-text", dict({"image": urls[0], "max_tokens": 1}, **kw)
    return "/v1/summary", dict({"text": "An article.", "images": urls, "max_tokens": 1}, **kw)


def assert_served(result):
    status, _, data = result
    assert status == 200, data[:500]


def assert_refused(result, status, code):
    got, headers, data = result
    assert got == status, data[:500]
    assert headers["content-type"] == "application/json"
    assert error_of(data)["code"] == code


@pytest.mark.parametrize("api", ["chat", "summary"])
def test_documented_max_images_8(example, api):
    tiny = data_url("tiny.png")
    assert_served(example.post(*images_body(api, [tiny] * 8)))
    assert_refused(example.post(*images_body(api, [tiny] * 9)), 400, "too_many_images")


@pytest.mark.parametrize("api", ["chat", "alt", "summary"])
def test_documented_max_image_bytes_10m(example, api):
    assert_served(example.post(*images_body(api, [b64_url(real_png(64, 64, 10 * MIB))])))
    assert_refused(example.post(*images_body(api, [b64_url(real_png(64, 64, 10 * MIB + 1))])),
                   413, "image_too_large")


def multipart_image(raw):
    boundary = b"vlm-limits-boundary"
    body = (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="image"; '
            b'filename="x.png"\r\nContent-Type: image/png\r\n\r\n' + raw + b"\r\n--"
            + boundary + b"--\r\n")
    return body, {"Content-Type": "multipart/form-data; boundary=" + boundary.decode()}


def test_documented_max_image_bytes_10m_multipart(example):
    body, headers = multipart_image(real_png(64, 64, 10 * MIB))
    assert_served(example.post("/v1/alt-text", body, headers=headers))
    body, headers = multipart_image(real_png(64, 64, 10 * MIB + 1))
    assert_refused(example.post("/v1/alt-text", body, headers=headers), 413, "image_too_large")


@pytest.mark.parametrize("api", ["chat", "alt", "summary"])
def test_documented_max_pixels_4096x4096(example, api):
    assert_served(example.post(*images_body(api, [b64_url(real_png(4096, 4096))])))
    # only the header is read: a 4097 x 4096 one need not decode
    assert_refused(example.post(*images_body(api, [b64_url(png_header(4097, 4096))])),
                   413, "image_too_many_pixels")


def prompt_body(api, n):
    if api == "chat":
        return "/v1/chat/completions", chat_body(text="a" * n, image=None, max_tokens=1)
    if api == "alt":
        return "/v1/alt-text", {"image": data_url("tiny.png"), "context": "a" * n,
                                "max_tokens": 1}
    return "/v1/summary", {"text": "a" * n, "max_tokens": 1}


@pytest.mark.parametrize("api", ["chat", "alt", "summary"])
def test_documented_max_prompt_bytes_64k(example, api):
    # 64 KiB of prompt passes nginx. The tiny test model has 4096 tokens of
    # context, so vlmd itself refuses it (its message, not nginx's code);
    # the real model takes it.
    status, _, data = example.post(*prompt_body(api, 64 * 1024))
    assert status == 200 or (status == 413 and error_of(data)["code"] != "prompt_too_large"
                             and "context" in error_of(data)["message"]), data[:500]
    assert_refused(example.post(*prompt_body(api, 64 * 1024 + 1)), 413, "prompt_too_large")


def first_event(example, path, body):
    """Status of a streamed request, closed after its first event: max_tokens
    2048 is accepted without waiting for 2048 tokens."""
    conn = http.client.HTTPConnection("127.0.0.1", example.port, timeout=120)
    conn.request("POST", path, body=json.dumps(body), headers={
        "Authorization": "Bearer " + example.jwt(), "Content-Type": "application/json"})
    resp = conn.getresponse()
    first = resp.read(1) if resp.status == 200 else resp.read()
    conn.close()
    return resp.status, first


@pytest.mark.parametrize("api", ["chat", "alt", "summary"])
def test_documented_max_tokens_2048(example, api):
    path, body = images_body(api, [data_url("tiny.png")], temperature=0.8)
    if api == "chat":
        status, first = first_event(example, path, dict(body, max_tokens=2048, stream=True))
        assert status == 200 and first, first
    else:
        status, _, data = example.post(path, dict(body, max_tokens=2048))
        assert status == 200, data[:500]
    status, _, data = example.post(path, dict(body, max_tokens=2049))
    assert status == 400 and error_of(data)["code"] == "max_tokens_too_large", data


@pytest.mark.parametrize("api, kind, lo, hi", [("alt", None, 20, 400),
                                               ("summary", "summary", 100, 3000),
                                               ("summary", "seo_description", 50, 160)])
def test_documented_max_length_of_the_prompt_templates(example, api, kind, lo, hi):
    # max_chars of conf/prompts/*.json (English), which vlmd enforces
    path, body = images_body(api, [data_url("tiny.png")], language="en")
    if kind:
        body["kind"] = kind
    for n in (lo, hi):
        assert_served(example.post(path, dict(body, max_length=n)))
    for n in (lo - 1, hi + 1):
        status, _, data = example.post(path, dict(body, max_length=n))
        assert status == 400 and "max length" in error_of(data)["message"], data


def test_documented_chat_list_limits(example):
    # 256 messages, 64 parts in a message, 4 stop strings of 64 bytes, top_logprobs 20
    msgs = [{"role": "user", "content": "hi"}] * 256
    assert_served(example.post("/v1/chat/completions", chat_body(image=None) | {"messages": msgs}))
    status, _, data = example.post("/v1/chat/completions",
                                   chat_body(image=None) | {"messages": msgs + msgs[:1]})
    assert status == 400 and error_of(data)["param"] == "messages", data
    parts = [{"type": "text", "text": "x"}] * 64
    body = chat_body(image=None)
    body["messages"][0]["content"] = parts
    assert_served(example.post("/v1/chat/completions", body))
    body["messages"][0]["content"] = parts + parts[:1]
    assert example.post("/v1/chat/completions", body)[0] == 400
    assert_served(example.post("/v1/chat/completions", chat_body(stop=["s" * 64] * 4)))
    assert example.post("/v1/chat/completions", chat_body(stop=["s" * 64] * 5))[0] == 400
    assert example.post("/v1/chat/completions", chat_body(stop=["s" * 65]))[0] == 400
    assert_served(example.post("/v1/chat/completions",
                               chat_body(logprobs=True, top_logprobs=20)))
    assert example.post("/v1/chat/completions", chat_body(logprobs=True, top_logprobs=21))[0] == 400


def ignored_key(api):
    # what each endpoint takes and ignores: chat's "user", the tasks' unknown keys
    return "user" if api == "chat" else "x-padding"


@pytest.mark.parametrize("api", ["chat", "alt", "summary"])
def test_documented_max_json_depth_16(example, api):
    path, body = images_body(api, [data_url("tiny.png")])
    nest = lambda d: [] if d == 1 else [nest(d - 1)]  # noqa: E731
    # the body's object is level 1
    assert_served(example.post(path, dict(body, **{ignored_key(api): nest(15)})))
    assert_refused(example.post(path, dict(body, **{ignored_key(api): nest(16)})),
                   400, "json_too_deep")


def count_values(v):
    if isinstance(v, dict):
        return 1 + sum(count_values(x) for x in v.values())
    if isinstance(v, list):
        return 1 + sum(count_values(x) for x in v)
    return 1


@pytest.mark.parametrize("api", ["chat", "alt", "summary"])
def test_documented_max_json_values_65536(example, api):
    path, body = images_body(api, [data_url("tiny.png")])
    body = dict(body, **{ignored_key(api): []})
    body[ignored_key(api)] = [0] * (65536 - count_values(body))
    assert count_values(body) == 65536
    assert_served(example.post(path, body))
    body[ignored_key(api)].append(0)
    assert_refused(example.post(path, body), 400, "json_too_complex")


@pytest.mark.parametrize("api", ["chat", "alt", "summary"])
def test_documented_client_max_body_size_24m(example, api):
    path, body = images_body(api, [data_url("tiny.png")])
    body = dict(body, **{ignored_key(api): ""})
    body[ignored_key(api)] = "p" * (24 * MIB - len(json.dumps(body)))
    data = json.dumps(body)
    assert len(data) == 24 * MIB
    assert_served(example.post(path, data, headers={"Content-Type": "application/json"}))
    assert_refused(example.post(path, data + " ", headers={"Content-Type": "application/json"}),
                   413, "request_too_large")


def test_documented_max_images_8_through_vlm_run_daemon(stack):
    # vlm-run --daemon puts each image in its own arena region and the body
    # in one more: 8 images needed 9 regions, one more than the IPC client
    # freed with a request, and it stopped with "too many images".
    import os
    import subprocess
    from conftest import BIN, IMAGES

    def run(n):
        cmd = [os.path.join(BIN, "vlm-run"), "--daemon", stack.vlmd_sock, "--prompt", "hi",
               "--max-tokens", "1"]
        for _ in range(n):
            cmd += ["--image", os.path.join(IMAGES, "tiny.png")]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    done = run(8)
    assert done.returncode == 0, done.stderr
    refused = run(9)
    assert refused.returncode != 0 and "images" in refused.stderr, refused.stderr
