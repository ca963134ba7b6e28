// The paged KV cache: the block table hands out and takes back blocks with
// reference counts, shares published prompt blocks only behind the same
// prefix, evicts idle cached blocks least recently used first; and the
// batched decoder over scattered blocks gives the logits of the contiguous
// single-sequence decoder, whatever else is in the batch.
#include "serve/kv_block_table.h"
#include "core/backend.h"
#include "model/model.h"
#include "backend/registry.h"

#include <check.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

using namespace vlm;

namespace {

std::string fixtures() {
    const char *d = std::getenv("VLM_FIXTURES");
    return d ? d : "";
}

std::vector<uint64_t> keys_of(std::initializer_list<uint64_t> base, size_t n) {
    std::vector<uint64_t> k(base);
    while (k.size() < n) k.push_back(k.size() * 7 + 1);
    return k;
}

}  // namespace

START_TEST(test_allocate_release) {
    KvBlockTable t(8, 4);
    std::vector<int32_t> a, b;
    ck_assert(t.allocate(5, a));
    ck_assert_int_eq(t.used(), 5);
    ck_assert(!t.allocate(4, b));          // only 3 left: nothing taken
    ck_assert_int_eq(t.used(), 5);
    ck_assert(b.empty());
    ck_assert(t.allocate(3, b));
    std::vector<int32_t> all = a;
    all.insert(all.end(), b.begin(), b.end());
    std::sort(all.begin(), all.end());
    ck_assert(std::adjacent_find(all.begin(), all.end()) == all.end());   // all distinct
    t.release(a);
    ck_assert_int_eq(t.used(), 3);
    ck_assert_int_eq(t.available(), 5);
    t.release(b);
    ck_assert_int_eq(t.used(), 0);
    ck_assert_int_eq(t.available(), 8);
}
END_TEST

START_TEST(test_prefix_publish_match_evict) {
    const int bt = 4;
    KvBlockTable t(6, bt);
    std::vector<uint64_t> keys = keys_of({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, 12);
    std::vector<int32_t> seq1;
    ck_assert(t.allocate(3, seq1));
    std::vector<uint64_t> h = t.chain_hashes(keys.data(), 3);
    for (int64_t i = 0; i < 3; ++i) t.publish(keys.data(), i, h[size_t(i)], i ? h[size_t(i - 1)] : 0, seq1[size_t(i)]);

    // Same first two blocks, different third: two blocks shared.
    std::vector<uint64_t> other = keys;
    other[9] = 999;
    std::vector<int32_t> seq2;
    ck_assert_int_eq(t.match_prefix(other.data(), 3, seq2), 2);
    ck_assert(seq2[0] == seq1[0] && seq2[1] == seq1[1]);
    ck_assert_int_eq(t.used(), 3);         // shared, not copied
    // A different first token: nothing shared even though later blocks match.
    std::vector<uint64_t> shifted = keys;
    shifted[0] = 42;
    std::vector<int32_t> seq3;
    ck_assert_int_eq(t.match_prefix(shifted.data(), 3, seq3), 0);

    // Released published blocks stay cached (idle) and still match.
    t.release(seq1);
    t.release(seq2);
    ck_assert_int_eq(t.used(), 0);
    ck_assert_int_eq(t.cached_idle(), 3);
    std::vector<int32_t> seq4;
    ck_assert_int_eq(t.match_prefix(keys.data(), 3, seq4), 3);
    t.release(seq4);
    // Memory pressure evicts idle cached blocks, least recently used first.
    std::vector<int32_t> big;
    ck_assert(t.allocate(6, big));
    ck_assert_int_eq(t.cached_idle(), 0);
    t.release(big);
    std::vector<int32_t> seq5;
    ck_assert_int_eq(t.match_prefix(keys.data(), 3, seq5), 0);
    std::printf("block table: share, refuse other prefixes, keep idle, evict under pressure: ok\n");
}
END_TEST

// forward_batch over shuffled blocks, batched with other sequences, equals
// the contiguous forward of each sequence alone, step after step.
START_TEST(test_batched_paged_matches_contiguous) {
    for (const char *name : {"tiny-flash", "tiny-flash-bf16"}) {
        std::string err;
        BackendOptions bo;
        bo.n_threads = 2;
        auto backend = make_backend("cpu", bo, err);
        ck_assert_msg(backend != nullptr, "%s", err.c_str());
        std::unique_ptr<Model> model;
        ck_assert_msg(load_model(fixtures() + "/models/" + name, *backend, model, err), "%s", err.c_str());
        const int32_t vocab = model->config().text.vocab_size;
        const int bt = 4;
        KvPool pool;
        ck_assert(model->new_kv_pool(64, bt, pool, err));

        // Three text-only sequences of different lengths (positions = index).
        const int n_seq = 3;
        std::vector<std::vector<int32_t>> prompts = {
            {5, 9, 13, 17, 21, 25, 29},
            {100, 7, 8, 300, 12, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54},
            {3, 4}};
        // Scattered block tables: sequence s owns blocks s, s+3, s+6, ... reversed.
        std::vector<std::vector<int32_t>> tables(n_seq);
        for (int s = 0; s < n_seq; ++s) {
            for (int b = 0; b < 16; ++b) tables[size_t(s)].push_back(s + 3 * b);
            std::reverse(tables[size_t(s)].begin(), tables[size_t(s)].end());
        }
        std::vector<KvCache> caches(n_seq);
        std::vector<std::vector<float>> ref_logits(n_seq);
        std::vector<std::vector<int32_t>> pos_store(n_seq), ids_store(n_seq);
        double max_diff = 0;
        std::vector<int64_t> n_past(n_seq, 0);
        for (int round = 0; round < 4; ++round) {
            std::vector<SeqStep> steps;
            for (int s = 0; s < n_seq; ++s) {
                // Round 0: the whole prompt; later: one decode token.
                std::vector<int32_t> ids = round == 0 ? prompts[size_t(s)]
                                                      : std::vector<int32_t>{int32_t(10 + 7 * round + s)};
                std::vector<int32_t> pos(3 * ids.size());
                for (int p = 0; p < 3; ++p)
                    for (size_t i = 0; i < ids.size(); ++i)
                        pos[size_t(p) * ids.size() + i] = int32_t(n_past[size_t(s)] + int64_t(i));
                if (round == 0) ck_assert(model->new_cache(64, caches[size_t(s)], err));
                ck_assert_msg(model->forward(ids, pos, nullptr, 0, caches[size_t(s)], false,
                                             ref_logits[size_t(s)], err), "%s", err.c_str());
                ids_store[size_t(s)] = ids;
                pos_store[size_t(s)] = pos;
                SeqStep st;
                st.ids = ids_store[size_t(s)].data();
                st.positions = pos_store[size_t(s)].data();
                st.n = int64_t(ids.size());
                st.blocks = tables[size_t(s)].data();
                st.n_blocks = int64_t(tables[size_t(s)].size());
                st.n_past = n_past[size_t(s)];
                st.want_logits = true;
                steps.push_back(st);
            }
            std::vector<float> logits;
            ck_assert_msg(model->forward_batch(steps, pool, logits, err), "%s", err.c_str());
            ck_assert_int_eq(logits.size(), size_t(n_seq) * size_t(vocab));
            for (int s = 0; s < n_seq; ++s) {
                for (int32_t v = 0; v < vocab; ++v)
                    max_diff = std::max(max_diff, double(std::fabs(logits[size_t(s) * size_t(vocab) + size_t(v)] -
                                                                   ref_logits[size_t(s)][size_t(v)])));
                n_past[size_t(s)] += steps[size_t(s)].n;
            }
        }
        std::printf("%s: batched paged vs contiguous single-sequence logits, max abs diff %g\n", name, max_diff);
        ck_assert_msg(max_diff == 0.0, "%s: batched paged logits differ by %g", name, max_diff);

        // A bad block table is an error, not a crash.
        int32_t id = 1, pos[3] = {0, 0, 0}, bad_block = 1000;
        SeqStep st;
        st.ids = &id;
        st.positions = pos;
        st.n = 1;
        st.blocks = &bad_block;
        st.n_blocks = 1;
        std::vector<float> logits;
        ck_assert(!model->forward_batch({st}, pool, logits, err));
        ck_assert(err.find("outside the pool") != std::string::npos);
    }
}
END_TEST

#include "check_main.h"

int main(int argc, char **argv) {
    return vlm_check_main(argc, argv, "paged_kv", {
        {"paged_kv", 60, {
            test_allocate_release,
            test_prefix_publish_match_evict,
            test_batched_paged_matches_contiguous,
        }},
    });
}
