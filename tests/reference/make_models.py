"""make_models.py: tiny random GLM-4V models and their goldens (tests/fixtures/models/<name>/).

Each model directory is what a Hugging Face model directory holds (save_pretrained safetensors,
config.json, tokenizer files, chat_template.jinja, preprocessor_config.json,
generation_config.json) plus golden/{cases.json,golden.safetensors}: prompt ids, M-RoPE position
ids, pixel values, vision tower output, full-prompt logits and 32 greedy tokens (eos ignored).
Leaves out: the real weights; video inputs.
"""
import copy
import json
import os
import shutil

import numpy as np
import torch

import make_fixtures as mf
from make_tokenizer import CHAT_TEMPLATE

GREEDY_STEPS = 32

TEXT_COMMON = dict(hidden_act="silu", max_position_embeddings=4096, rms_norm_eps=1e-5, attention_dropout=0.0,
                   use_cache=True, initializer_range=0.02)
VISION_COMMON = dict(hidden_act="silu", attention_bias=False, in_channels=3, patch_size=mf.PATCH,
                     spatial_merge_size=mf.MERGE, temporal_patch_size=mf.TEMPORAL, rms_norm_eps=1e-5,
                     attention_dropout=0.0, initializer_range=0.02)

MODELS = {
    # Flash's structure: partial rotary 0.5, interleaved M-RoPE, GQA, untied, 6x6 position table.
    "tiny-flash": dict(
        seed=1001,
        text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2,
                  rope_parameters={"rope_type": "default", "rope_theta": 500000.0, "partial_rotary_factor": 0.5,
                                   "mrope_section": [2, 1, 1]}),
        vision=dict(depth=2, hidden_size=32, num_heads=2, intermediate_size=48, image_size=84),
    ),
    # Different sizes: head_dim 32 (rotary 16, 8 frequencies), 1 KV head, 3 layers, vision depth 3,
    # 5x5 position table; config.json rewritten to the transformers 4.5x form.
    "tiny-alt": dict(
        seed=2004,   # chosen so every greedy step has a top-1/top-2 logit gap > 0.01
        text=dict(hidden_size=64, intermediate_size=112, num_hidden_layers=3, num_attention_heads=2,
                  num_key_value_heads=1,
                  rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5,
                                   "mrope_section": [2, 3, 3]}),
        vision=dict(depth=3, hidden_size=32, num_heads=4, intermediate_size=64, image_size=70),
    ),
}

CASES = {
    "tiny-flash": ["en_photo", "zh_system_two_images", "text_only", "exif_rotated"],
    "tiny-alt": ["zh_system_two_images", "text_only", "gif_frame"],
    "tiny-flash-bf16": ["en_photo", "text_only"],
}

CASE_DEFS = {
    "en_photo": dict(system=None, user="Describe this picture in one sentence.", images=["photo.jpg"]),
    "zh_system_two_images": dict(system="你是助手",
                                 user="这是什么？",
                                 images=["alpha.png", "cjk_screenshot.png"]),
    "text_only": dict(system=None, user="Summarize: it's 中文 2025!", images=[]),
    "exif_rotated": dict(system=None, user="What does the arrow point to?", images=["exif6.jpg"]),
    "gif_frame": dict(system="You write alt text.", user="Alt text for this image, please.", images=["anim.gif"]),
}


def special_ids(tok):
    from make_tokenizer import GLM_SPECIAL_TOKENS
    return {t: tok.convert_tokens_to_ids(t) for t in GLM_SPECIAL_TOKENS}


def build_config(spec, sp, vocab_size):
    from transformers import Glm4vConfig
    eos = [sp["<|endoftext|>"], sp["<|user|>"], sp["<|observation|>"]]
    text = dict(TEXT_COMMON, vocab_size=vocab_size, pad_token_id=sp["<|endoftext|>"], eos_token_id=eos,
                **spec["text"])
    vision = dict(VISION_COMMON, out_hidden_size=spec["text"]["hidden_size"], **spec["vision"])
    return Glm4vConfig(
        text_config=text, vision_config=vision,
        image_token_id=sp["<|image|>"], video_token_id=sp["<|video|>"],
        image_start_token_id=sp["<|begin_of_image|>"], image_end_token_id=sp["<|end_of_image|>"],
        video_start_token_id=sp["<|begin_of_video|>"], video_end_token_id=sp["<|end_of_video|>"],
        tie_word_embeddings=False, eos_token_id=eos, pad_token_id=sp["<|endoftext|>"])


@torch.no_grad()
def randomize(model, seed):
    """Every parameter random: norm weights around 1 (not 1), biases small non-zero, matrices scaled by
    1/sqrt(fan_in) so activations stay O(1); the LM head a bit larger so logits are spread."""
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        shape = p.shape
        r = torch.randn(shape, generator=g, dtype=torch.float32)
        if p.ndim == 1:
            if "norm" in name and name.endswith("weight"):
                v = 1.0 + 0.25 * r
            else:
                v = 0.1 * r                                    # biases, LayerNorm bias
        elif "embed_tokens" in name:
            v = 1.0 * r
        elif "position_embedding" in name:
            v = 0.5 * r
        elif name == "lm_head.weight":
            v = r * (3.0 / shape[1] ** 0.5)
        else:
            fan_in = int(np.prod(shape[1:]))
            v = r * (1.0 / fan_in ** 0.5)
        p.copy_(v.to(p.dtype))


def write_preprocessor_and_tokenizer(dst, tok_dir):
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(os.path.join(tok_dir, f), os.path.join(dst, f))
    mf.write_json(os.path.join(dst, "preprocessor_config.json"), mf.PREPROCESSOR_CONFIG)


def generation_config(sp):
    return {"_from_model_config": False, "eos_token_id": [sp["<|endoftext|>"], sp["<|user|>"], sp["<|observation|>"]],
            "pad_token_id": sp["<|endoftext|>"], "do_sample": False}


def to_v45_form(model_dir):
    """Rewrites config.json into the transformers 4.5x form: rope_theta / partial_rotary_factor as plain
    text_config fields and rope_scaling {rope_type, mrope_section} instead of rope_parameters."""
    path = os.path.join(model_dir, "config.json")
    cfg = json.load(open(path))
    tc = cfg["text_config"]
    rp = tc.pop("rope_parameters")
    tc["rope_theta"] = rp["rope_theta"]
    tc["partial_rotary_factor"] = rp["partial_rotary_factor"]
    tc["rope_scaling"] = {"rope_type": "default", "mrope_section": rp["mrope_section"]}
    cfg["rope_theta"] = rp["rope_theta"]                      # as some 4.5x exports also carry it at top level
    cfg["partial_rotary_factor"] = rp["partial_rotary_factor"]
    vc = cfg["vision_config"]
    vc.pop("rope_parameters", None)                           # 4.5x vision configs had none (theta 10000 in code)
    cfg["transformers_version"] = "4.57.1"
    mf.write_json(path, cfg)


def load_processor(model_dir):
    from transformers import AutoProcessor
    return AutoProcessor.from_pretrained(model_dir)


def build_messages(case):
    from PIL import Image  # noqa: F401
    msgs = []
    if case["system"]:
        msgs.append({"role": "system", "content": [{"type": "text", "text": case["system"]}]})
    content = []
    for f in case["images"]:
        rgb, _ = mf.load_reference_rgb(os.path.join(mf.IMG_DIR, f))
        content.append({"type": "image", "image": rgb})
    content.append({"type": "text", "text": case["user"]})
    msgs.append({"role": "user", "content": content})
    return msgs


def prepare_inputs(processor, case):
    msgs = build_messages(case)
    inputs = processor.apply_chat_template(msgs, add_generation_prompt=True, enable_thinking=False, tokenize=True,
                                           return_dict=True, return_tensors="pt")
    prompt = processor.apply_chat_template(msgs, add_generation_prompt=True, enable_thinking=False, tokenize=False)
    # Cross-check: render + processor call on the same PIL images gives the same tensors.
    imgs = [c["image"] for m in msgs for c in m["content"] if c.get("type") == "image"]
    alt = processor(text=prompt, images=imgs or None, return_tensors="pt")
    assert torch.equal(alt["input_ids"], inputs["input_ids"])
    if imgs:
        assert torch.equal(alt["pixel_values"], inputs["pixel_values"])
    return msgs, prompt, inputs


@torch.no_grad()
def greedy(model, inputs, steps):
    """argmax decoding with the KV cache, eos ignored."""
    model.model.rope_deltas = None
    out = model(**inputs, use_cache=True)
    toks, margins = [], []
    for step in range(steps):
        last = out.logits[0, -1].float()
        top2 = torch.topk(last, 2).values
        toks.append(int(last.argmax()))
        margins.append(float(top2[0] - top2[1]))
        if step + 1 < steps:
            out = model(input_ids=torch.tensor([[toks[-1]]]), past_key_values=out.past_key_values, use_cache=True)
    model.model.rope_deltas = None
    return toks, margins


@torch.no_grad()
def generate_check(model, inputs, toks, eos):
    """transformers' own generate must agree with the manual loop up to the first eos."""
    model.model.rope_deltas = None
    gen = model.generate(**inputs, max_new_tokens=len(toks), do_sample=False, eos_token_id=eos, pad_token_id=eos[0])
    model.model.rope_deltas = None
    new = gen[0, inputs["input_ids"].shape[1]:].tolist()
    ref = toks[:len(new)]
    assert new == ref, (new, ref)
    return len(new)


@torch.no_grad()
def run_case(model, inputs, name, tensors, pv_store=None, logits_key="logits"):
    mm = model.model
    res = {}
    if "pixel_values" in inputs:
        pv = inputs["pixel_values"]
        if pv_store is not None:
            res["pixel_values_file"], res["pixel_values_key"] = pv_store(name, pv.float().contiguous(), tensors)
        feats = mm.get_image_features(pv, inputs["image_grid_thw"]).pooler_output
        tensors[f"{name}.vision_output"] = torch.cat(feats, 0).float().contiguous()
        pos, delta = mm.get_rope_index(inputs["input_ids"], inputs["mm_token_type_ids"],
                                       image_grid_thw=inputs["image_grid_thw"],
                                       attention_mask=inputs.get("attention_mask"))
        res["position_ids"] = pos[:, 0].tolist()
        res["rope_delta"] = int(delta[0, 0])
    else:
        n = inputs["input_ids"].shape[1]
        res["position_ids"] = [list(range(n))] * 3
        res["rope_delta"] = 0
    mm.rope_deltas = None
    logits = model(**inputs).logits[0]
    mm.rope_deltas = None
    tensors[f"{name}.{logits_key}"] = logits.float().contiguous()
    return res


def header(extra=None):
    h = {"format_version": mf.FORMAT_VERSION, "versions": mf.versions(), "greedy_steps": GREEDY_STEPS,
         "attn_implementation": "eager", "chat_template_kwargs": {"add_generation_prompt": True, "enable_thinking": False}}
    h.update(extra or {})
    return h


def make_model_fixtures(fix_dir):
    from safetensors.torch import save_file
    from transformers import AutoConfig, Glm4vForConditionalGeneration

    torch.set_num_threads(2)
    tok_dir = os.path.join(fix_dir, "tokenizer")
    models_dir = os.path.join(fix_dir, "models")
    os.makedirs(models_dir, exist_ok=True)
    summary = {}

    def save_golden(mdir, hdr, cases, tensors):
        gdir = os.path.join(mdir, "golden")
        os.makedirs(gdir, exist_ok=True)
        mf.write_json(os.path.join(gdir, "cases.json"), {"header": hdr, "cases": cases})
        p = os.path.join(gdir, "golden.safetensors")
        save_file(tensors, p, metadata={"format_version": str(mf.FORMAT_VERSION)})
        os.chmod(p, 0o644)

    def case_record(cname, msgs_case, prompt, inputs, res, toks):
        grids = inputs["image_grid_thw"].tolist() if "image_grid_thw" in inputs else []
        return {"name": cname, "system": msgs_case["system"], "user": msgs_case["user"],
                "images": msgs_case["images"], "prompt": prompt,
                "prompt_ids": inputs["input_ids"][0].tolist(), "image_grid_thw": grids,
                "n_image_tokens": [int(np.prod(g)) // mf.MERGE ** 2 for g in grids],
                "position_ids": res["position_ids"], "rope_delta": res["rope_delta"],
                "pixel_values_file": res.get("pixel_values_file"), "pixel_values_key": res.get("pixel_values_key"),
                "greedy_tokens": toks}

    stored_pv = {}   # case name -> (file relative to fixtures, key, tensor): each image set stored once

    def make_pv_store(model_name):
        def store(case_name, pv, tensors):
            if case_name in stored_pv:
                f, k, t = stored_pv[case_name]
                assert torch.equal(t, pv), case_name
                return f, k
            f = f"models/{model_name}/golden/golden.safetensors"
            tensors[f"{case_name}.pixel_values"] = pv
            stored_pv[case_name] = (f, f"{case_name}.pixel_values", pv)
            return f, f"{case_name}.pixel_values"
        return store

    fp32_models = {}
    for name, spec in MODELS.items():
        mdir = os.path.join(models_dir, name)
        if os.path.isdir(mdir):
            shutil.rmtree(mdir)
        os.makedirs(mdir)
        write_preprocessor_and_tokenizer(mdir, tok_dir)
        processor = load_processor(mdir)
        sp = special_ids(processor.tokenizer)
        cfg = build_config(spec, sp, len(processor.tokenizer))
        torch.manual_seed(spec["seed"])
        model = Glm4vForConditionalGeneration(cfg).eval()
        randomize(model, spec["seed"])
        model = model.float()
        model.config.dtype = "float32"
        model.save_pretrained(mdir)
        mf.write_json(os.path.join(mdir, "generation_config.json"), generation_config(sp))
        if name == "tiny-alt":
            to_v45_form(mdir)
        # Reload from disk exactly as a user would; the goldens come from the reloaded model.
        model = Glm4vForConditionalGeneration.from_pretrained(mdir, attn_implementation="eager",
                                                              dtype=torch.float32).eval()
        loaded_cfg = AutoConfig.from_pretrained(mdir)
        assert loaded_cfg.text_config.rope_parameters["mrope_section"] == spec["text"]["rope_parameters"]["mrope_section"]
        assert loaded_cfg.text_config.rope_parameters["partial_rotary_factor"] == 0.5, loaded_cfg.text_config.rope_parameters
        processor = load_processor(mdir)
        eos = generation_config(sp)["eos_token_id"]

        tensors, cases = {}, []
        for cname in CASES[name]:
            cdef = CASE_DEFS[cname]
            msgs, prompt, inputs = prepare_inputs(processor, cdef)
            res = run_case(model, inputs, cname, tensors, pv_store=make_pv_store(name))
            toks, margins = greedy(model, inputs, GREEDY_STEPS)
            n_checked = generate_check(model, inputs, toks, eos)
            rec = case_record(cname, cdef, prompt, inputs, res, toks)
            rec["greedy_min_margin"] = min(margins)
            rec["greedy_margins"] = [round(x, 6) for x in margins]
            rec["generate_agrees_for"] = n_checked
            rec["greedy_text"] = processor.tokenizer.decode(toks, skip_special_tokens=False)
            cases.append(rec)
        hdr = header({"model": name, "seed": spec["seed"], "dtype": "float32",
                      "config_form": "transformers 4.5x (rope_scaling)" if name == "tiny-alt" else "transformers 5.x (rope_parameters)",
                      "special_tokens": sp, "eos_token_ids": eos})
        save_golden(mdir, hdr, cases, tensors)
        fp32_models[name] = (mdir, sp)
        summary[name] = {c["name"]: (len(c["prompt_ids"]), c["image_grid_thw"], c["greedy_tokens"][:8]) for c in cases}

    # tiny-alt: the 4.5x-form config must load to the same model as the 5.x form.
    alt_dir, _ = fp32_models["tiny-alt"]
    check_alt_forms(alt_dir)

    # tiny-flash-bf16: tiny-flash's weights rounded to bfloat16, stored as bf16.
    src_dir, sp = fp32_models["tiny-flash"]
    mdir = os.path.join(models_dir, "tiny-flash-bf16")
    if os.path.isdir(mdir):
        shutil.rmtree(mdir)
    os.makedirs(mdir)
    write_preprocessor_and_tokenizer(mdir, tok_dir)
    m = Glm4vForConditionalGeneration.from_pretrained(src_dir, dtype=torch.float32).eval()
    m = m.to(torch.bfloat16)
    m.config.dtype = "bfloat16"
    m.save_pretrained(mdir)
    mf.write_json(os.path.join(mdir, "generation_config.json"), generation_config(sp))
    m32 = Glm4vForConditionalGeneration.from_pretrained(mdir, attn_implementation="eager", dtype=torch.float32).eval()
    m16 = Glm4vForConditionalGeneration.from_pretrained(mdir, attn_implementation="eager", dtype=torch.bfloat16).eval()
    assert next(m16.parameters()).dtype == torch.bfloat16 and next(m32.parameters()).dtype == torch.float32
    processor = load_processor(mdir)
    eos = generation_config(sp)["eos_token_id"]
    tensors, cases = {}, []
    for cname in CASES["tiny-flash-bf16"]:
        cdef = CASE_DEFS[cname]
        msgs, prompt, inputs = prepare_inputs(processor, cdef)
        res = run_case(m32, inputs, cname, tensors, pv_store=make_pv_store("tiny-flash-bf16"))
        toks32, margins32 = greedy(m32, inputs, GREEDY_STEPS)
        # native bf16: what a user running the bf16 checkpoint in bf16 gets
        vo = {}
        res16 = run_case(m16, inputs, cname + "@bf16", vo, logits_key="logits")
        tensors[f"{cname}.logits_bf16"] = vo[f"{cname}@bf16.logits"]
        if f"{cname}@bf16.vision_output" in vo:
            tensors[f"{cname}.vision_output_bf16"] = vo[f"{cname}@bf16.vision_output"]
        toks16, margins16 = greedy(m16, inputs, GREEDY_STEPS)
        assert res16["position_ids"] == res["position_ids"]
        rec = case_record(cname, cdef, prompt, inputs, res, toks32)
        rec["greedy_min_margin"] = min(margins32)
        rec["greedy_margins"] = [round(x, 6) for x in margins32]
        rec["greedy_tokens_bf16"] = toks16
        rec["greedy_min_margin_bf16"] = min(margins16)
        rec["greedy_margins_bf16"] = [round(x, 6) for x in margins16]
        rec["generate_agrees_for"] = generate_check(m32, inputs, toks32, eos)
        rec["generate_agrees_for_bf16"] = generate_check(m16, inputs, toks16, eos)
        cases.append(rec)
    hdr = header({"model": "tiny-flash-bf16", "seed": MODELS["tiny-flash"]["seed"], "dtype": "bfloat16",
                  "source": "tiny-flash weights rounded to bfloat16 (round-to-nearest-even, torch .to(bfloat16))",
                  "logits": "bf16 weights upcast to float32 (exact), float32 math",
                  "logits_bf16": "model loaded with dtype=torch.bfloat16, native bf16 forward (eager), logits upcast to float32",
                  "vision_output": "float32 path; vision_output_bf16: native bf16 path upcast to float32",
                  "special_tokens": sp, "eos_token_ids": eos})
    save_golden(mdir, hdr, cases, tensors)
    summary["tiny-flash-bf16"] = {c["name"]: (len(c["prompt_ids"]), c["greedy_tokens"][:8], c["greedy_tokens_bf16"][:8])
                                  for c in cases}
    for k, v in summary.items():
        print(k)
        for c, s in v.items():
            print("   ", c, s)


@torch.no_grad()
def check_alt_forms(alt_dir):
    """Loads tiny-alt from its 4.5x config and from the same config converted back to the 5.x form;
    both must give identical logits."""
    import tempfile
    from transformers import Glm4vForConditionalGeneration
    cfg = json.load(open(os.path.join(alt_dir, "config.json")))
    v5 = copy.deepcopy(cfg)
    tc = v5["text_config"]
    rs = tc.pop("rope_scaling")
    tc["rope_parameters"] = {"rope_type": "default", "rope_theta": tc.pop("rope_theta"),
                             "partial_rotary_factor": tc.pop("partial_rotary_factor"),
                             "mrope_section": rs["mrope_section"]}
    v5.pop("rope_theta", None)
    v5.pop("partial_rotary_factor", None)
    ids = torch.tensor([[5, 17, 300, 999, 42, 7, 1200, 64]])
    with tempfile.TemporaryDirectory() as d:
        for f in os.listdir(alt_dir):
            if f.endswith(".safetensors") or f.endswith(".json"):
                shutil.copy(os.path.join(alt_dir, f), d)
        mf.write_json(os.path.join(d, "config.json"), v5)
        a = Glm4vForConditionalGeneration.from_pretrained(alt_dir, attn_implementation="eager").eval()
        b = Glm4vForConditionalGeneration.from_pretrained(d, attn_implementation="eager").eval()
        assert a.config.text_config.rope_parameters == b.config.text_config.rope_parameters, (
            a.config.text_config.rope_parameters, b.config.text_config.rope_parameters)
        la, lb = a(input_ids=ids).logits, b(input_ids=ids).logits
        assert torch.equal(la, lb)
        print("tiny-alt: 4.5x-form config loads to the same model as the 5.x form:",
              a.config.text_config.rope_parameters)
