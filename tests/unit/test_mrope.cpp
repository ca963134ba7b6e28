// compute_mrope_positions (transformers 5.23 get_rope_index for one
// sequence): exact equality with the positions and rope deltas recorded by
// transformers for every fixture case, plus hand-checked layouts (text only,
// one image, two images, a frame inside a video span, a truncated image run).
#include "model/model.h"
#include "model_golden_cases.h"

#include <check.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

using namespace vlm;

namespace {

ModelConfig tiny_config() {
    ModelConfig c;
    c.vision.spatial_merge_size = 2;
    c.image_token_id = 500;
    c.image_start_token_id = 502;
    c.image_end_token_id = 503;
    c.video_start_token_id = 504;
    c.video_end_token_id = 505;
    return c;
}

// planes as three vectors for readable expectations
struct Planes {
    std::vector<int32_t> t, h, w;
};

Planes split(const std::vector<int32_t> &pos) {
    size_t n = pos.size() / 3;
    return {{pos.begin(), pos.begin() + n},
            {pos.begin() + n, pos.begin() + 2 * n},
            {pos.begin() + 2 * n, pos.end()}};
}

}  // namespace

START_TEST(text_only_counts_up_with_zero_delta)
{
    std::vector<int32_t> pos;
    int delta = 7;
    compute_mrope_positions(tiny_config(), {1, 2, 3, 4}, {}, pos, delta);
    Planes p = split(pos);
    ck_assert(p.t == (std::vector<int32_t>{0, 1, 2, 3}));
    ck_assert(p.h == p.t && p.w == p.t);
    ck_assert_int_eq(delta, 0);
}
END_TEST

START_TEST(one_image_uses_merged_grid_and_advances_by_longest_side)
{
    // 2 text, image grid (1, 4, 6) -> merged 2 x 3 = 6 tokens, 2 text.
    std::vector<int32_t> ids{1, 502, 500, 500, 500, 500, 500, 500, 503, 9};
    std::vector<int32_t> pos;
    int delta = 0;
    compute_mrope_positions(tiny_config(), ids, {{1, 4, 6}}, pos, delta);
    Planes p = split(pos);
    ck_assert(p.t == (std::vector<int32_t>{0, 1, 2, 2, 2, 2, 2, 2, 5, 6}));
    ck_assert(p.h == (std::vector<int32_t>{0, 1, 2, 2, 2, 3, 3, 3, 5, 6}));
    ck_assert(p.w == (std::vector<int32_t>{0, 1, 2, 3, 4, 2, 3, 4, 5, 6}));
    ck_assert_int_eq(delta, 6 + 1 - 10);
}
END_TEST

START_TEST(two_images_each_take_their_grid)
{
    std::vector<int32_t> ids{502, 500, 503, 502, 500, 500, 500, 500, 503};
    std::vector<int32_t> pos;
    int delta = 0;
    compute_mrope_positions(tiny_config(), ids, {{1, 2, 2}, {1, 4, 4}}, pos, delta);
    Planes p = split(pos);
    // image 1 at 1 (1 token), advances by 1; image 2 (2x2) at 4.
    ck_assert(p.t == (std::vector<int32_t>{0, 1, 2, 3, 4, 4, 4, 4, 6}));
    ck_assert(p.h == (std::vector<int32_t>{0, 1, 2, 3, 4, 4, 5, 5, 6}));
    ck_assert(p.w == (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 4, 5, 6}));
    ck_assert_int_eq(delta, 7 - 9);
}
END_TEST

START_TEST(malformed_runs_fall_back_to_text_positions)
{
    // An image run longer than its grid, and image tokens inside a video span
    // (no video grids here): positioned as text, never out of bounds.
    std::vector<int32_t> ids{500, 500, 500, 504, 500, 505, 500};
    std::vector<int32_t> pos;
    int delta = 0;
    compute_mrope_positions(tiny_config(), ids, {{1, 2, 2}}, pos, delta);
    Planes p = split(pos);
    ck_assert(p.t == (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6}));
    ck_assert_int_eq(delta, 0);
    compute_mrope_positions(tiny_config(), {}, {}, pos, delta);
    ck_assert(pos.empty());
    ck_assert_int_eq(delta, 0);
}
END_TEST

START_TEST(fixture_positions_equal_transformers)
{
    const char *models[] = {"tiny-flash", "tiny-alt", "tiny-flash-bf16"};
    ck_assert_msg(!fixtures_dir().empty(), "VLM_FIXTURES is not set");
    int compared = 0;
    for (const char *m : models) {
        const std::string dir = fixtures_dir() + "/models/" + m;
        std::vector<GoldenCase> cases;
        std::string err;
        ck_assert_msg(load_golden_cases(dir, cases, err), "%s", err.c_str());
        ModelConfig cfg;
        ck_assert_msg(load_model_config(dir + "/config.json", cfg, err), "%s", err.c_str());
        for (const GoldenCase &c : cases) {
            std::vector<int32_t> pos;
            int delta = 0;
            compute_mrope_positions(cfg, c.prompt_ids, c.grids, pos, delta);
            size_t mismatches = 0;
            for (size_t i = 0; i < pos.size(); ++i) mismatches += pos[i] != c.positions[i];
            std::printf("[%s/%s] %zu tokens, %zu images: %zu position mismatches, "
                        "rope delta %d (want %d)\n", m, c.name.c_str(), c.prompt_ids.size(),
                        c.grids.size(), mismatches, delta, c.rope_delta);
            ck_assert_int_eq(int64_t(pos.size()), int64_t(c.positions.size()));
            ck_assert_int_eq(int64_t(mismatches), 0);
            ck_assert_int_eq(delta, c.rope_delta);
            ++compared;
        }
    }
    ck_assert_int_gt(compared, 0);
}
END_TEST

#include "check_main.h"

int main(int argc, char **argv) {
    setvbuf(stdout, nullptr, _IOLBF, 0);  // keep lines printed before a failure
    return vlm_check_main(argc, argv, "mrope", {
        {"positions", 0, {
            text_only_counts_up_with_zero_delta,
            one_image_uses_merged_grid_and_advances_by_longest_side,
            two_images_each_take_their_grid,
            malformed_runs_fall_back_to_text_positions,
            fixture_positions_equal_transformers,
        }},
    });
}
