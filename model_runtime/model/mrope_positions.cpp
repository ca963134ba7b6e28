// mrope_positions.cpp: transformers' Glm4vModel.get_rope_index for one
// unpadded sequence. Tokens are grouped into runs of one modality (the
// processor's mm_token_type_ids: image_token_id outside a video span is
// image, inside one is video, everything else is text). A text run of length
// L gets current..current+L-1 on all planes and advances current by L; an
// image run takes the next grid (t, h, w) and gets (current + ti,
// current + r, current + c) over the merged (t, h/m, w/m) grid, advancing
// current by max(h, w)/m. rope_delta = max position + 1 - length.
// Leaves out: video grids (not passed here; video-span tokens are positioned
// as text) and runs whose length does not match their grid (positioned as
// text; the forward pass rejects such prompts by their image-row count).
#include "model/model.h"

#include <algorithm>

namespace vlm {

namespace {

enum class TokenKind { Text, Image, Video };

}  // namespace

void compute_mrope_positions(const ModelConfig &cfg,
                             const std::vector<int32_t> &ids,
                             const std::vector<ImageGrid> &grids,
                             std::vector<int32_t> &positions, int &rope_delta) {
    const size_t n = ids.size();
    positions.assign(3 * n, 0);
    rope_delta = 0;
    if (n == 0) return;
    int32_t *plane_t = positions.data();
    int32_t *plane_h = plane_t + n;
    int32_t *plane_w = plane_h + n;
    const int merge = std::max(1, cfg.vision.spatial_merge_size);

    std::vector<TokenKind> kind(n, TokenKind::Text);
    int64_t video_depth = 0;   // starts seen minus ends seen, as the processor counts
    for (size_t i = 0; i < n; ++i) {
        if (ids[i] == cfg.video_start_token_id) ++video_depth;
        if (ids[i] == cfg.video_end_token_id) --video_depth;
        if (ids[i] == cfg.image_token_id)
            kind[i] = video_depth > 0 ? TokenKind::Video : TokenKind::Image;
    }

    int64_t current = 0;
    size_t next_grid = 0;
    auto place_text = [&](size_t from, size_t to) {
        for (size_t i = from; i < to; ++i) {
            int32_t p = int32_t(current + int64_t(i - from));
            plane_t[i] = plane_h[i] = plane_w[i] = p;
        }
        current += int64_t(to - from);
    };

    for (size_t start = 0; start < n;) {
        size_t end = start + 1;
        while (end < n && kind[end] == kind[start]) ++end;
        bool placed = false;
        if (kind[start] == TokenKind::Image && next_grid < grids.size()) {
            const ImageGrid &g = grids[next_grid++];
            const int64_t gh = g.h / merge, gw = g.w / merge;
            if (g.t > 0 && gh > 0 && gw > 0 &&
                int64_t(end - start) == int64_t(g.t) * gh * gw) {
                size_t i = start;
                for (int64_t ti = 0; ti < g.t; ++ti)
                    for (int64_t r = 0; r < gh; ++r)
                        for (int64_t c = 0; c < gw; ++c, ++i) {
                            plane_t[i] = int32_t(current + ti);
                            plane_h[i] = int32_t(current + r);
                            plane_w[i] = int32_t(current + c);
                        }
                current += std::max(g.h, g.w) / merge;
                placed = true;
            }
        }
        if (!placed) place_text(start, end);
        start = end;
    }

    int32_t max_pos = *std::max_element(positions.begin(), positions.end());
    rope_delta = int(int64_t(max_pos) + 1 - int64_t(n));
}

}  // namespace vlm
