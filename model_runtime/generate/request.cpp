// request.cpp: see request.h.
#include "generate/request.h"

namespace vlm {

ImageBytes ImageBytes::copy_of(std::vector<uint8_t> bytes)
{
    auto owned = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
    ImageBytes b;
    b.data = owned->data();
    b.size = owned->size();
    b.owner = owned;
    return b;
}

SamplingParams resolved_sampling(const GenerationConfig &gen, const ChatRequest &req)
{
    SamplingParams sp = req.sampling;
    const SamplingFromModel &m = req.from_model;
    if (m.temperature) sp.temperature = gen.do_sample ? float(gen.temperature) : 0.0f;
    if (m.top_p) sp.top_p = gen.do_sample ? float(gen.top_p) : 1.0f;
    if (m.top_k) sp.top_k = gen.do_sample ? gen.top_k : 0;
    if (m.repetition_penalty) sp.repetition_penalty = float(gen.repetition_penalty);
    if (m.seed) sp.seed = fresh_seed();
    return sp;
}

void apply_generation_defaults(const GenerationConfig &gen, ChatRequest &req)
{
    req.sampling = resolved_sampling(gen, req);
    req.from_model = SamplingFromModel{};
}

}  // namespace vlm
