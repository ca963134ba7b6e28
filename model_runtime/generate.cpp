// generate.cpp: a single request, start to finish (see generate.h). No
// batching here: that is the daemon's scheduler's job.
#include "generate.h"

#include <algorithm>
#include <chrono>
#include <set>

namespace vlm {

static double ms_since(std::chrono::steady_clock::time_point t0)
{
    return std::chrono::duration<double, std::milli>(
               std::chrono::steady_clock::now() - t0).count();
}

ImageBytes ImageBytes::copy_of(std::vector<uint8_t> bytes)
{
    auto owned = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
    ImageBytes b;
    b.data = owned->data();
    b.size = owned->size();
    b.owner = owned;
    return b;
}

StopStringFilter::StopStringFilter(std::vector<std::string> stops)
{
    for (auto &s : stops)
        if (!s.empty()) stops_.push_back(std::move(s));
}

std::string StopStringFilter::push(const std::string &text, bool &stopped)
{
    held_ += text;
    stopped = false;
    size_t first = std::string::npos;
    for (const auto &s : stops_) first = std::min(first, held_.find(s));
    if (first != std::string::npos) {
        std::string out = held_.substr(0, first);
        held_.clear();
        stopped = true;
        return out;
    }
    // Keep the longest tail that is a proper prefix of some stop string.
    size_t keep = 0;
    for (const auto &s : stops_) {
        size_t max_len = std::min(s.size() - 1, held_.size());
        for (size_t len = max_len; len > keep; len--) {
            if (held_.compare(held_.size() - len, len, s, 0, len) == 0) {
                keep = len;
                break;
            }
        }
    }
    std::string out = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    return out;
}

std::string StopStringFilter::flush()
{
    std::string out;
    out.swap(held_);
    return out;
}

static bool prepare_images(const Model &model, const ChatRequest &req,
                           PixelBatch &px, std::vector<int> &image_tokens,
                           std::string &err)
{
    const PreprocessorConfig &pp = model.preprocessor();
    int merge2 = pp.merge_size * pp.merge_size;
    for (size_t i = 0; i < req.images.size(); i++) {
        RgbImage img;
        const ImageBytes &bytes = req.images[i];
        if (!decode_image(bytes.data, bytes.size, req.image_limits, img, err)) {
            err = "image " + std::to_string(i + 1) + ": " + err;
            return false;
        }
        size_t before = px.grids.size();
        if (!preprocess_image(img, pp, px, err)) {
            err = "image " + std::to_string(i + 1) + ": " + err;
            return false;
        }
        if (px.grids.size() != before + 1) {
            err = "image " + std::to_string(i + 1) + ": preprocessing produced no grid";
            return false;
        }
        const ImageGrid &g = px.grids.back();
        image_tokens.push_back(g.t * g.h * g.w / merge2);
    }
    return true;
}

bool generate(Model &model, const Tokenizer &tok, const ChatRequest &req,
              const TextSink &sink, GenerationResult &out, std::string &err)
{
    auto t_start = std::chrono::steady_clock::now();
    const ModelConfig &cfg = model.config();

    if (req.max_tokens < 1) {
        err = "max_tokens must be at least 1";
        return false;
    }

    PixelBatch px;
    std::vector<int> image_tokens;
    if (!prepare_images(model, req, px, image_tokens, err)) return false;
    out.timings.image_ms = ms_since(t_start);

    if (!build_prompt_ids(tok, req.messages, req.chat, image_tokens,
                          out.prompt_ids, err))
        return false;
    const int64_t n_prompt = int64_t(out.prompt_ids.size());
    const int64_t max_pos = cfg.text.max_position_embeddings;
    if (max_pos > 0 && n_prompt + req.max_tokens > max_pos) {
        err = "prompt (" + std::to_string(n_prompt) + " tokens) + max_tokens (" +
              std::to_string(req.max_tokens) + ") exceeds the model's context of " +
              std::to_string(max_pos) + " tokens";
        return false;
    }

    std::vector<float> image_embeds;
    auto t_vision = std::chrono::steady_clock::now();
    if (!px.grids.empty() && !model.encode_images(px, image_embeds, err)) return false;
    out.timings.vision_ms = ms_since(t_vision);
    int64_t n_image_rows = cfg.text.hidden_size > 0
        ? int64_t(image_embeds.size()) / cfg.text.hidden_size : 0;

    std::vector<int32_t> positions;
    KvCache cache;
    compute_mrope_positions(cfg, out.prompt_ids, px.grids, positions, cache.rope_delta);
    int rope_delta = cache.rope_delta;
    if (!model.new_cache(n_prompt + req.max_tokens, cache, err)) return false;
    cache.rope_delta = rope_delta;

    std::vector<float> logits;
    auto t_prefill = std::chrono::steady_clock::now();
    if (!model.forward(out.prompt_ids, positions, image_embeds.data(), n_image_rows,
                       cache, false, logits, err))
        return false;
    out.timings.prefill_ms = ms_since(t_prefill);

    std::set<int32_t> eos(cfg.eos_token_ids.begin(), cfg.eos_token_ids.end());
    for (int id : model.generation().eos_token_ids) eos.insert(id);

    const int32_t vocab = int32_t(logits.size());
    Sampler sampler(req.sampling);
    TokenStreamDecoder decoder(tok, true);
    StopStringFilter stop_filter(req.stop_strings);
    auto t_decode = std::chrono::steady_clock::now();
    out.finish_reason = "length";
    bool stop_string_hit = false;

    auto emit = [&](const std::string &piece) {
        if (piece.empty()) return true;
        out.text += piece;
        return !sink || sink(piece);
    };

    for (int step = 0; step < req.max_tokens; step++) {
        int32_t id = sampler.sample(logits.data(), vocab);
        if (step == 0) {
            out.timings.ttft_ms = ms_since(t_start);
            t_decode = std::chrono::steady_clock::now();
        }
        if (req.logprobs_top >= 0)
            out.logprobs.push_back(token_logprob(logits.data(), vocab, id,
                                                 req.logprobs_top));
        if (!req.ignore_eos && eos.count(id)) {
            out.finish_reason = "stop";
            break;
        }
        out.tokens.push_back(id);

        bool stopped = false;
        std::string piece = stop_filter.push(decoder.push(id), stopped);
        if (!emit(piece)) {
            out.finish_reason = "cancelled";
            break;
        }
        if (stopped) {
            stop_string_hit = true;
            out.finish_reason = "stop";
            break;
        }
        if (step + 1 == req.max_tokens) break;

        std::vector<int32_t> next{id};
        int32_t pos = int32_t(cache.n_past) + cache.rope_delta;
        std::vector<int32_t> next_pos{pos, pos, pos};
        if (!model.forward(next, next_pos, nullptr, 0, cache, false, logits, err))
            return false;
    }
    // At EOS or the length limit, text held for an incomplete UTF-8 sequence
    // or a possible stop-string prefix is still part of the answer.
    if (!stop_string_hit && out.finish_reason != "cancelled") {
        bool stopped = false;
        std::string tail = stop_filter.push(decoder.finish(), stopped);
        if (!stopped) tail += stop_filter.flush();
        emit(tail);
    }
    out.timings.decode_ms = ms_since(t_decode);
    return true;
}

}  // namespace vlm
