// prompt_prep.h: the part of a request before the decoder runs, shared by
// generate() (vlm-run) and the engine (vlmd) so both feed the decoder the
// same rows: images decoded, preprocessed and encoded one image per encoder
// call (optionally through the vision cache), prompt ids, M-RoPE positions,
// and a content key per prompt token for prefix reuse (text: its id; image
// token: the image's SHA-256 and its index, since every image has the same
// <|image|> ids). Also the prefill chunking both use. Leaves out: decoding.
//
// Two phases, so a server can run the first elsewhere: decode_images() is
// CPU work on the bytes alone (hash, decode, preprocess; no model, no
// backend, safe on any thread), prepare_prompt() runs the vision encoder and
// builds the prompt, decoding itself whatever was not decoded before.
#pragma once

#include "generate/generate.h"
#include "model/model.h"
#include "text/tokenizer.h"
#include "util/hash.h"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace vlm {

class VisionCache;

// One image of a request after decode_images().
struct DecodedImage {
    Sha256      sha{};
    std::string vision_key;       // the vision cache's key for it
    bool        decoded = false;  // pixels hold it (false: it was cached)
    PixelBatch  pixels;           // one grid when decoded
};

// The images of a request, hashed and (unless `cache` already holds their
// encoder output) decoded and preprocessed, with the same statuses and
// messages as prepare_prompt. `cache` may be null. Thread-safe.
struct DecodedImages {
    std::vector<DecodedImage> images;
    double                    image_ms = 0;
};
bool decode_images(const PreprocessorConfig &pp, const ChatRequest &req, const VisionCache *cache,
                   DecodedImages &out, int &status, std::string &err);

struct PreparedPrompt {
    std::vector<int32_t>  ids;
    std::vector<int32_t>  positions;     // 3 planes of ids.size()
    int                   rope_delta = 0;
    std::vector<float>    image_embeds;  // all images' rows, in prompt order
    std::vector<uint64_t> token_keys;    // content key per prompt token
    double image_ms = 0, vision_ms = 0;
    int    vision_cache_hits = 0, vision_cache_misses = 0;
};

// Everything up to the decoder. On failure `status` is 400 (bad request or
// undecodable image), 413 (over a size or context limit), 415 (unsupported
// image type), or what model_failure_status says when the vision encoder's
// backend failed; `err` is a one-line reason. `cache` may be null.
// `decoded` (may be null) is decode_images()'s result for this request: its
// pixels are used instead of decoding again; an image it found cached but
// that was evicted since is decoded here.
bool prepare_prompt(Model &model, const Tokenizer &tok, const ChatRequest &req,
                    VisionCache *cache, PreparedPrompt &out, int &status,
                    std::string &err, DecodedImages *decoded = nullptr);

// The status of a request whose Model call returned false: 503 when the
// backend failed with a device error (a CUDA error: the batch's work is
// lost, a retry may succeed, or the device is lost and vlmd must restart),
// 500 when the backend refused an op (a bug in the runtime), `otherwise`
// when the backend did not fail (the request itself was bad). Reads the
// fault the call left (backend.h); the model's next call clears it.
int model_failure_status(Model &model, int otherwise);

// Prefill chunks end at multiples of `chunk` tokens counted from the start of
// the prompt (so a sequence's chunks are the same whatever runs beside it).
int64_t prefill_chunk_end(int64_t start, int64_t n_prompt, int chunk);

// The step for prompt tokens [start, end) of `p` over the given block table.
SeqStep prefill_step(const PreparedPrompt &p, int64_t start, int64_t end,
                     const std::vector<int32_t> &blocks, std::vector<int32_t> &positions_buf,
                     int64_t d_model, int image_token_id);

}  // namespace vlm
