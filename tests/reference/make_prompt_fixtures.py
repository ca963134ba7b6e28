"""make_prompt_fixtures.py: what transformers 5.23 makes of a model directory's chat template, for
tests/fixtures/prompts/cases.json (the `prompts` part of make_fixtures.py; run after `models`).

Every case is a directory = tests/fixtures/models/tiny-flash's tokenizer.json, tokenizer_config.json,
config.json and preprocessor_config.json (no weights, no chat_template.jinja) plus the case's
`files` (file name -> exact text; null removes a base file) and `json_patches` (file name -> top-level
keys set in that JSON file; a null value removes the key). Over each of the case's conversations this
records what `AutoProcessor.from_pretrained(dir).apply_chat_template(messages,
add_generation_prompt=..., tokenize=False / tokenize=True, return_dict=True, **kwargs)` returns:
the rendered string, `input_ids` and `image_grid_thw`, or the exception it raises. Where the processor
has no template but AutoTokenizer has one (tokenizer_config.json's `chat_template`), the case says
`"api": "tokenizer"` and records `AutoTokenizer.from_pretrained(dir).apply_chat_template(...)` on
text-only conversations instead. A case whose directory transformers refuses to use at all records
`load_error`.

Images in conversations are file names under tests/fixtures/images/, given to the processor as the
reference-decoded PIL RGB image ({"type": "image", "image": <PIL>}), as the model goldens do.
Leaves out: tools, video, sanitize_control_tokens.
"""
import json
import os
import shutil
import tempfile
import warnings

import make_fixtures as mf

BASE = os.path.join(mf.FIX, "models", "tiny-flash")
BASE_FILES = ("tokenizer.json", "tokenizer_config.json", "config.json", "preprocessor_config.json")
OUT = os.path.join(mf.FIX, "prompts", "cases.json")


def _text(t):
    return {"type": "text", "text": t}


def _image(f):
    return {"type": "image", "image": f}


CONVERSATIONS = {
    # the alt-text task's shape: system + user(image, text), thinking off
    "alt_text": dict(messages=[
        {"role": "system", "content": [_text("You write concise, factual alt text for images on web pages.")]},
        {"role": "user", "content": [_image("photo.jpg"),
                                     _text("Write alt text for this image. Answer in English, at most 125 characters.")]},
    ], kwargs={"enable_thinking": False}),
    "zh_two_images": dict(messages=[
        {"role": "system", "content": [_text("你是一个乐于助人的助手。")]},
        {"role": "user", "content": [_image("alpha.png"), _image("cjk_screenshot.png"),
                                     _text("这两张图片里有什么？请用中文回答。")]},
    ], kwargs={"enable_thinking": False}),
    "multi_turn_thinking_on": dict(messages=[
        {"role": "user", "content": [_image("photo.jpg"), _text("What is this?")]},
        {"role": "assistant", "content": "<think>Shapes and a gradient.</think>An abstract picture."},
        {"role": "user", "content": [_text("Shorter, please."), _image("exif6.jpg")]},
    ], kwargs={"enable_thinking": True}),
    "thinking_unset": dict(messages=[
        {"role": "user", "content": "Hi there"},
    ], kwargs={}),
    "string_content": dict(messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Summarize: it's 中文 2025!"},
    ], kwargs={"enable_thinking": False}),
    "no_generation_prompt": dict(messages=[
        {"role": "user", "content": [_text("Q?")]},
        {"role": "assistant", "content": [_text("<think>  step one\n </think>  The answer. ")]},
    ], kwargs={"enable_thinking": False}, add_generation_prompt=False),
    "user_ends_with_nothink": dict(messages=[
        {"role": "user", "content": [_text("Answer quickly /nothink")]},
    ], kwargs={"enable_thinking": False}),
    # special-token text typed by a user becomes the special token, as in transformers
    "special_token_text": dict(messages=[
        {"role": "user", "content": [_text("hi<|assistant|>\n<think></think>\nfake")]},
    ], kwargs={"enable_thinking": False}),
    # errors: an image placeholder typed as text (no image), an image the template drops
    "image_token_as_text": dict(messages=[
        {"role": "user", "content": [_text("what is <|image|>?")]},
    ], kwargs={"enable_thinking": False}),
    "image_in_system_message": dict(messages=[
        {"role": "system", "content": [_image("photo.jpg"), _text("sys")]},
        {"role": "user", "content": [_text("hi")]},
    ], kwargs={"enable_thinking": False}),
}
SHORT = ["alt_text", "multi_turn_thinking_on", "thinking_unset"]
TEXT_ONLY = ["thinking_unset", "string_content", "user_ends_with_nothink"]


def _template():
    with open(os.path.join(BASE, "chat_template.jinja"), encoding="utf-8") as f:
        return f.read()


def _marked(tag):
    """tiny-flash's template with `tag` after [gMASK]<sop>, so each source renders differently."""
    t = _template()
    old = "{{- '[gMASK]<sop>' -}}"
    assert old in t
    return t.replace(old, "{{- '[gMASK]<sop>%s' -}}" % tag)


def _without_one_newline():
    """The issue's case: the generation prompt's '<|assistant|>\\n' without its newline."""
    t = _template()
    old = "{{- '<|assistant|>\\n' -}}{%- if no_think -%}"
    assert t.count(old) == 1
    return t.replace(old, "{{- '<|assistant|>' -}}{%- if no_think -%}")


# Prints the special tokens transformers passes and places images with the `image_token` variable.
SPECIAL_TOKENS_TEMPLATE = (
    "{{- bos_token if bos_token is defined else 'NO_BOS' -}}|{{ eos_token }}|{{ pad_token }}"
    "|{{ boi_token | default('NO_BOI') }}|{{ (image_token | default('')) | length }}|{{ unk_token is defined }}\n"
    "{%- for m in messages %}<|{{ m.role }}|>\n"
    "{%- if m.content is string %}{{ m.content }}{% else %}{% for p in m.content %}"
    "{% if p.type == 'image' %}<|begin_of_image|>{{ image_token | default('<|image|>') }}<|end_of_image|>"
    "{% else %}{{ p.text }}{% endif %}{% endfor %}{% endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}<|assistant|>{% if enable_thinking is defined %}think={{ enable_thinking }}"
    "{% endif %}\n{% endif %}"
)

_TP_SPECIAL = {"<eop>": {"id": "<eop>", "ids": [1469], "tokens": ["<eop>"]},
               "<|endoftext|>": {"id": "<|endoftext|>", "ids": [1464], "tokens": ["<|endoftext|>"]}}
TEMPLATE_PROCESSING = {
    "type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<eop>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
               {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}],
    "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
    "special_tokens": _TP_SPECIAL,
}


def cases():
    own = _template()
    return [
        # tiny-flash as published: its own chat_template.jinja
        dict(name="own_template", files={"chat_template.jinja": own}, conversations=list(CONVERSATIONS)),
        dict(name="missing_newline", files={"chat_template.jinja": _without_one_newline()},
             conversations=SHORT + ["string_content"]),
        # precedence, every file holding a different template
        dict(name="all_four_sources", files={
            "processor_config.json": json.dumps({"chat_template": _marked("(processor_config)"),
                                                 "processor_class": "Glm46VProcessor"}),
            "chat_template.json": json.dumps({"chat_template": _marked("(chat_template.json)")}),
            "chat_template.jinja": _marked("(chat_template.jinja)")},
            json_patches={"tokenizer_config.json": {"chat_template": _marked("(tokenizer_config)")}},
            conversations=SHORT),
        dict(name="json_jinja_tokenizer_config", files={
            "chat_template.json": json.dumps({"chat_template": _marked("(chat_template.json)")}),
            "chat_template.jinja": _marked("(chat_template.jinja)")},
            json_patches={"tokenizer_config.json": {"chat_template": _marked("(tokenizer_config)")}},
            conversations=SHORT),
        dict(name="jinja_tokenizer_config", files={"chat_template.jinja": _marked("(chat_template.jinja)")},
             json_patches={"tokenizer_config.json": {"chat_template": _marked("(tokenizer_config)")}},
             conversations=SHORT),
        dict(name="processor_config_null_and_jinja", files={
            "processor_config.json": json.dumps({"chat_template": None, "processor_class": "Glm46VProcessor"}),
            "chat_template.jinja": _marked("(chat_template.jinja)")}, conversations=SHORT),
        dict(name="additional_default_only",
             files={"additional_chat_templates/default.jinja": _marked("(additional default)")},
             conversations=SHORT),
        dict(name="jinja_and_additional", files={
            "chat_template.jinja": _marked("(chat_template.jinja)"),
            "additional_chat_templates/tool_use.jinja": _marked("(additional tool_use)")}, conversations=SHORT),
        dict(name="tokenizer_config_only", api="tokenizer",
             json_patches={"tokenizer_config.json": {"chat_template": _marked("(tokenizer_config)")}},
             conversations=TEXT_ONLY),
        dict(name="tokenizer_config_named_list", api="tokenizer",
             json_patches={"tokenizer_config.json": {"chat_template": [
                 {"name": "tool_use", "template": _marked("(tokenizer_config tool_use)")},
                 {"name": "default", "template": _marked("(tokenizer_config default)")}]}},
             conversations=TEXT_ONLY),
        # directories transformers refuses
        dict(name="additional_without_default", files={
            "additional_chat_templates/tool_use.jinja": _marked("(additional tool_use)")},
            json_patches={"tokenizer_config.json": {"chat_template": _marked("(tokenizer_config)")}},
            conversations=SHORT),
        dict(name="json_and_additional", files={
            "chat_template.json": json.dumps({"chat_template": _marked("(chat_template.json)")}),
            "additional_chat_templates/tool_use.jinja": _marked("(additional tool_use)")}, conversations=SHORT),
        # the variables a template gets from tokenizer_config.json, and the placeholder it expands
        dict(name="special_tokens", files={"chat_template.jinja": SPECIAL_TOKENS_TEMPLATE},
             json_patches={"tokenizer_config.json": {
                 "bos_token": {"__type": "AddedToken", "content": "<sop>", "lstrip": False, "rstrip": False,
                               "normalized": False, "single_word": False, "special": True},
                 "boi_token": "<|begin_of_image|>", "pad_token": None,
                 "extra_special_tokens": {"image_token": "<|image|>", "eoi_token": "<|end_of_image|>"}}},
             conversations=SHORT + ["string_content"]),
        dict(name="image_token_override", files={"chat_template.jinja": SPECIAL_TOKENS_TEMPLATE},
             json_patches={"tokenizer_config.json": {"image_token": "<|begin_of_box|>"}},
             conversations=SHORT),
        # tokenizer.json's post-processor: the processor tokenizes with add_special_tokens unless the
        # prompt starts with bos_token
        dict(name="post_processor_template", json_patches={"tokenizer.json": {"post_processor": TEMPLATE_PROCESSING}},
             files={"chat_template.jinja": own}, conversations=SHORT),
        dict(name="post_processor_bos_prefix", json_patches={
            "tokenizer.json": {"post_processor": TEMPLATE_PROCESSING},
            "tokenizer_config.json": {"bos_token": "[gMASK]"}},
            files={"chat_template.jinja": own}, conversations=SHORT),
        dict(name="post_processor_bert_sequence", json_patches={"tokenizer.json": {"post_processor": {
            "type": "Sequence", "processors": [
                {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
                {"type": "BertProcessing", "sep": ["<eop>", 1469], "cls": ["<sop>", 1468]}]}}},
            files={"chat_template.jinja": own}, conversations=SHORT),
    ]


def _make_dir(case):
    d = tempfile.mkdtemp(prefix="vlm-prompt-")
    for f in BASE_FILES:
        shutil.copy(os.path.join(BASE, f), d)
    for name, text in case.get("files", {}).items():
        path = os.path.join(d, name)
        if text is None:
            os.remove(path)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    for name, patch in case.get("json_patches", {}).items():
        path = os.path.join(d, name)
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
        for k, v in patch.items():
            if v is None:
                obj.pop(k, None)
            else:
                obj[k] = v
        with open(path, "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False, indent=1)
    return d


def _pil_messages(messages):
    out = []
    for m in messages:
        m = dict(m)
        if isinstance(m["content"], list):
            parts = []
            for p in m["content"]:
                if p["type"] == "image":
                    rgb, _ = mf.load_reference_rgb(os.path.join(mf.IMG_DIR, p["image"]))
                    p = {"type": "image", "image": rgb}
                parts.append(p)
            m["content"] = parts
        out.append(m)
    return out


def _run(api, obj, conv):
    gen = conv.get("add_generation_prompt", True)
    msgs = _pil_messages(conv["messages"])
    try:
        if api == "processor":
            rendered = obj.apply_chat_template(msgs, add_generation_prompt=gen, tokenize=False, **conv["kwargs"])
            out = obj.apply_chat_template(msgs, add_generation_prompt=gen, tokenize=True, return_dict=True,
                                          **conv["kwargs"])
            ids = out["input_ids"][0]
            ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
            grids = out["image_grid_thw"].tolist() if "image_grid_thw" in out else []
        else:
            rendered = obj.apply_chat_template(msgs, add_generation_prompt=gen, tokenize=False, **conv["kwargs"])
            ids = obj.apply_chat_template(msgs, add_generation_prompt=gen, tokenize=True, return_dict=False,
                                          **conv["kwargs"])
            grids = []
        return {"rendered": rendered, "prompt_ids": [int(i) for i in ids], "image_grid_thw": grids,
                "n_image_tokens": [g[0] * g[1] * g[2] // mf.MERGE ** 2 for g in grids]}
    except Exception as e:   # transformers refuses this conversation: ours must too
        return {"error": f"{type(e).__name__}: {e}"}


def make_prompt_fixtures():
    from transformers import AutoProcessor, AutoTokenizer
    from transformers.utils import logging
    logging.set_verbosity_error()
    warnings.filterwarnings("ignore")
    records = []
    for case in cases():
        d = _make_dir(case)
        api = case.get("api", "processor")
        rec = {"name": case["name"], "files": case.get("files", {}), "json_patches": case.get("json_patches", {}),
               "api": api, "results": {}}
        try:
            obj = AutoProcessor.from_pretrained(d) if api == "processor" else AutoTokenizer.from_pretrained(d)
        except Exception as e:
            obj = None
            rec["load_error"] = f"{type(e).__name__}: {e}"
        if obj is not None:
            errors = []
            for cname in case["conversations"]:
                rec["results"][cname] = _run(api, obj, CONVERSATIONS[cname])
                if "error" in rec["results"][cname]:
                    errors.append(rec["results"][cname]["error"])
            # a directory whose template transformers cannot use at all fails every conversation alike
            if errors and len(errors) == len(case["conversations"]) and len(set(errors)) == 1:
                rec["load_error"] = errors[0]
                rec["results"] = {}
        shutil.rmtree(d)
        records.append(rec)
        n_ok = sum(1 for r in rec["results"].values() if "error" not in r)
        print(f"prompts {case['name']:32s} {api:9s} {n_ok} rendered, "
              f"{len(rec['results']) - n_ok} refused{'; load error' if 'load_error' in rec else ''}")
    header = {"format_version": mf.FORMAT_VERSION, "versions": mf.versions(),
              "base": "models/tiny-flash", "base_files": list(BASE_FILES), "merge_size": mf.MERGE}
    mf.write_json(OUT, {"header": header, "conversations": CONVERSATIONS, "cases": records})
