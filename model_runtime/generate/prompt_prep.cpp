// prompt_prep.cpp: see prompt_prep.h.
#include "generate/prompt_prep.h"

#include "text/chat_prompt.h"
#include "image/image.h"
#include "generate/vision_cache.h"
#include "util/hash.h"

#include <chrono>
#include <cstdio>

namespace vlm {

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
        .count();
}

// Image errors to HTTP-like statuses: over a limit 413, unknown type 415,
// anything else (corrupt, truncated) 400.
int image_error_status(const std::string &err) {
    if (err.find("over the limit") != std::string::npos) return 413;
    if (err.find("unsupported") != std::string::npos) return 415;
    return 400;
}

// Everything that changes the encoder's output for the same bytes.
std::string vision_key(const Sha256 &sha, const PreprocessorConfig &pp, const ImageLimits &lim) {
    char buf[512];
    std::snprintf(buf, sizeof buf, "|%ld,%ld,%d,%d,%d,%d%d%d%d,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g|%zu,%lld",
                  pp.min_pixels, pp.max_pixels, pp.patch_size, pp.temporal_patch_size,
                  pp.merge_size, pp.do_resize, pp.do_rescale, pp.do_normalize, pp.do_convert_rgb,
                  pp.rescale_factor, double(pp.image_mean[0]), double(pp.image_mean[1]),
                  double(pp.image_mean[2]), double(pp.image_std[0]), double(pp.image_std[1]),
                  double(pp.image_std[2]), lim.max_bytes, (long long)lim.max_pixels);
    return hex_of(sha) + buf;
}

// One image: bytes -> RGB -> the processor's pixels (one grid).
bool decode_one_image(const PreprocessorConfig &pp, const ChatRequest &req, size_t i,
                      PixelBatch &px, int &status, std::string &err) {
    RgbImage img;
    const ImageBytes &bytes = req.images[i];
    if (!decode_image(bytes.data, bytes.size, req.image_limits, img, err) ||
        !preprocess_image(img, pp, px, err)) {
        status = image_error_status(err);
        err = "image " + std::to_string(i + 1) + ": " + err;
        return false;
    }
    if (px.grids.size() != 1) {
        status = 400;
        err = "image " + std::to_string(i + 1) + ": preprocessing produced no grid";
        return false;
    }
    return true;
}

bool hash_one_image(const ChatRequest &req, size_t i, Sha256 &sha, int &status, std::string &err) {
    const ImageBytes &b = req.images[i];
    if (!b.data && b.size) {
        status = 400;
        err = "image " + std::to_string(i + 1) + ": no bytes";
        return false;
    }
    if (!sha256_of(b.data, b.size, sha)) {
        status = 500;
        err = "image " + std::to_string(i + 1) + ": SHA-256 failed";
        return false;
    }
    return true;
}

// One image through the cache, or pixels (decoded now or before) -> encoder.
bool encode_one_image(Model &model, const ChatRequest &req, size_t i, DecodedImage &d,
                      VisionCache *cache, PreparedPrompt &out,
                      std::shared_ptr<const VisionCacheEntry> &entry, int &status,
                      std::string &err) {
    if (cache && (entry = cache->get(d.vision_key))) {
        ++out.vision_cache_hits;
        return true;
    }
    ++out.vision_cache_misses;
    if (!d.decoded) {
        auto t0 = std::chrono::steady_clock::now();
        if (!decode_one_image(model.preprocessor(), req, i, d.pixels, status, err)) return false;
        d.decoded = true;
        out.image_ms += ms_since(t0);
    }
    auto fresh = std::make_shared<VisionCacheEntry>();
    fresh->grid = d.pixels.grids[0];
    auto t1 = std::chrono::steady_clock::now();
    if (!model.encode_images(d.pixels, fresh->embeds, err)) {
        status = model_failure_status(model, 400);
        err = "image " + std::to_string(i + 1) + ": " + err;
        return false;
    }
    out.vision_ms += ms_since(t1);
    d.pixels = PixelBatch{};   // the encoder's output replaces them
    if (cache) cache->put(d.vision_key, fresh);
    entry = std::move(fresh);
    return true;
}

}  // namespace

bool decode_images(const PreprocessorConfig &pp, const ChatRequest &req, const VisionCache *cache,
                   DecodedImages &out, int &status, std::string &err) {
    out.images.assign(req.images.size(), DecodedImage{});
    for (size_t i = 0; i < req.images.size(); ++i) {
        DecodedImage &d = out.images[i];
        if (!hash_one_image(req, i, d.sha, status, err)) return false;
        d.vision_key = vision_key(d.sha, pp, req.image_limits);
        if (cache && cache->contains(d.vision_key)) continue;
        auto t0 = std::chrono::steady_clock::now();
        if (!decode_one_image(pp, req, i, d.pixels, status, err)) return false;
        d.decoded = true;
        out.image_ms += ms_since(t0);
    }
    status = 0;
    return true;
}

int model_failure_status(Model &model, int otherwise) {
    switch (model.backend().fault()) {
    case BackendFault::None:        return otherwise;
    case BackendFault::Device:      return 503;
    case BackendFault::BadArgument:
    case BackendFault::Unsupported: return 500;
    }
    return 500;
}

bool prepare_prompt(Model &model, const Tokenizer &tok, const ChatRequest &req,
                    VisionCache *cache, PreparedPrompt &out, int &status, std::string &err,
                    DecodedImages *decoded) {
    const ModelConfig &cfg = model.config();
    const int64_t d_model = cfg.text.hidden_size;
    status = 400;
    if (req.max_tokens < 1) {
        err = "max_tokens must be at least 1";
        return false;
    }
    const int merge2 = model.preprocessor().merge_size * model.preprocessor().merge_size;
    std::vector<ImageGrid> grids;
    std::vector<int> image_tokens;
    DecodedImages local;
    if (!decoded || decoded->images.size() != req.images.size()) {
        // Hash now; decode one image at a time below (only on a cache miss).
        local.images.assign(req.images.size(), DecodedImage{});
        for (size_t i = 0; i < req.images.size(); ++i) {
            DecodedImage &d = local.images[i];
            if (!hash_one_image(req, i, d.sha, status, err)) return false;
            d.vision_key = vision_key(d.sha, model.preprocessor(), req.image_limits);
        }
        decoded = &local;
    }
    out.image_ms += decoded->image_ms;
    std::vector<Sha256> shas(req.images.size());
    for (size_t i = 0; i < req.images.size(); ++i) {
        shas[i] = decoded->images[i].sha;
        std::shared_ptr<const VisionCacheEntry> entry;
        if (!encode_one_image(model, req, i, decoded->images[i], cache, out, entry, status, err))
            return false;
        const ImageGrid &g = entry->grid;
        const int64_t n_tok = int64_t(g.t) * g.h * g.w / merge2;
        if (d_model <= 0 || int64_t(entry->embeds.size()) != n_tok * d_model) {
            status = 500;
            err = "image " + std::to_string(i + 1) + ": encoder output does not match its grid";
            return false;
        }
        grids.push_back(g);
        image_tokens.push_back(int(n_tok));
        out.image_embeds.insert(out.image_embeds.end(), entry->embeds.begin(), entry->embeds.end());
    }
    ChatOptions chat = req.chat;
    chat.image_token_id = cfg.image_token_id;   // config.json's, as the model matches it
    if (!build_prompt_ids(tok, req.messages, chat, image_tokens, out.ids, err)) return false;
    const int64_t n_prompt = int64_t(out.ids.size());
    const int64_t max_pos = cfg.text.max_position_embeddings;
    if (max_pos > 0 && n_prompt + req.max_tokens > max_pos) {
        status = 413;
        err = "prompt (" + std::to_string(n_prompt) + " tokens) + max_tokens (" +
              std::to_string(req.max_tokens) + ") exceeds the model's context of " +
              std::to_string(max_pos) + " tokens";
        return false;
    }
    compute_mrope_positions(cfg, out.ids, grids, out.positions, out.rope_delta);

    // Content keys: image tokens come in one run per image, in image order.
    out.token_keys.resize(out.ids.size());
    size_t image = 0;
    int64_t index_in_image = 0;
    for (size_t t = 0; t < out.ids.size(); ++t) {
        if (out.ids[t] != cfg.image_token_id || image >= shas.size()) {
            out.token_keys[t] = uint64_t(uint32_t(out.ids[t]));
            continue;
        }
        uint64_t h = 0;
        for (int b = 0; b < 8; ++b) h = (h << 8) | shas[image][size_t(b)];
        out.token_keys[t] = mix64(h ^ mix64(uint64_t(index_in_image))) | (uint64_t(1) << 63);
        if (++index_in_image == image_tokens[image]) {
            ++image;
            index_in_image = 0;
        }
    }
    status = 0;
    return true;
}

int64_t prefill_chunk_end(int64_t start, int64_t n_prompt, int chunk) {
    if (chunk <= 0) return n_prompt;
    return std::min<int64_t>(n_prompt, (start / chunk + 1) * int64_t(chunk));
}

SeqStep prefill_step(const PreparedPrompt &p, int64_t start, int64_t end,
                     const std::vector<int32_t> &blocks, std::vector<int32_t> &positions_buf,
                     int64_t d_model, int image_token_id) {
    const int64_t n = end - start, n_prompt = int64_t(p.ids.size());
    positions_buf.resize(3 * size_t(n));
    for (int plane = 0; plane < 3; ++plane)
        std::copy(p.positions.begin() + plane * n_prompt + start,
                  p.positions.begin() + plane * n_prompt + end,
                  positions_buf.begin() + plane * n);
    int64_t images_before = 0, images_in = 0;
    for (int64_t t = 0; t < end; ++t)
        if (p.ids[size_t(t)] == image_token_id) (t < start ? images_before : images_in)++;
    SeqStep st;
    st.ids = p.ids.data() + start;
    st.positions = positions_buf.data();
    st.n = n;
    if (images_in > 0 && !p.image_embeds.empty()) {
        st.image_embeds = p.image_embeds.data() + size_t(images_before) * size_t(d_model);
        st.n_image_rows = images_in;
    }
    st.blocks = blocks.data();
    st.n_blocks = int64_t(blocks.size());
    st.n_past = start;
    st.want_logits = end == n_prompt;
    return st;
}

}  // namespace vlm
