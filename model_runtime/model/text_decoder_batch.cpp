// text_decoder_batch.cpp: the decoder over many sequences at once for the
// serving engine (continuous batching over a paged KV cache). Rows of all
// steps share one residual stream; each matmul runs once per row group (see
// kSmallStepRows in model.h, so a row's numerics never depend on its
// neighbours); attention runs per sequence over its keys and values gathered
// from its blocks. Leaves out: a paged attention kernel (the gather is a copy
// of the sequence's own KV, small next to the weights each step streams).
#include "model/text_decoder.h"

#include <algorithm>
#include <cmath>

namespace vlm {

bool TextDecoder::new_kv_pool(int64_t n_blocks, int block_tokens, KvPool &pool,
                              std::string &err) const {
    if (n_blocks <= 0 || block_tokens <= 0 || block_tokens > 4096 ||
        size_t(n_blocks) > (size_t(1) << 40) / (size_t(block_tokens) * size_t(kv_dim_) * 4)) {
        err = "new_kv_pool: " + std::to_string(n_blocks) + " blocks of " +
              std::to_string(block_tokens) + " tokens out of range";
        return false;
    }
    KvPool fresh;
    fresh.n_blocks = n_blocks;
    fresh.block_tokens = block_tokens;
    const int64_t rows = n_blocks * block_tokens;
    for (size_t l = 0; l < layers_.size(); ++l) {
        fresh.k.emplace_back(*backend_, DType::F32, rows, kv_dim_);
        fresh.v.emplace_back(*backend_, DType::F32, rows, kv_dim_);
        if (fresh.k.back().t.empty() || fresh.v.back().t.empty()) {
            err = "new_kv_pool: out of device memory for " + std::to_string(rows) + " tokens";
            return false;
        }
    }
    pool = std::move(fresh);
    return true;
}

bool TextDecoder::validate_batch(const std::vector<SeqStep> &steps, const KvPool &pool,
                                 std::string &err) const {
    if (steps.empty()) {
        err = "forward_batch: no steps";
        return false;
    }
    if (pool.k.size() != layers_.size() || pool.v.size() != layers_.size() ||
        pool.block_tokens <= 0) {
        err = "forward_batch: KV pool was not made by this model";
        return false;
    }
    for (size_t s = 0; s < steps.size(); ++s) {
        const SeqStep &st = steps[s];
        const std::string where = "forward_batch: step " + std::to_string(s) + ": ";
        if (st.n <= 0 || !st.ids || !st.positions || !st.blocks || st.n_past < 0) {
            err = where + "empty or missing arrays";
            return false;
        }
        int64_t n_image_tokens = 0;
        for (int64_t i = 0; i < st.n; ++i) {
            if (st.ids[i] < 0 || st.ids[i] >= cfg_.vocab_size) {
                err = where + "token id " + std::to_string(st.ids[i]) + " outside vocabulary";
                return false;
            }
            if (st.ids[i] == image_token_id_) ++n_image_tokens;
        }
        if (st.n_image_rows < 0 || (st.n_image_rows > 0 && !st.image_embeds) ||
            (st.n_image_rows > 0 && st.n_image_rows != n_image_tokens)) {
            err = where + std::to_string(n_image_tokens) + " image tokens but " +
                  std::to_string(st.n_image_rows) + " image feature rows";
            return false;
        }
        if (st.n_blocks <= 0 || st.n_blocks > pool.n_blocks ||
            st.n_past + st.n > st.n_blocks * pool.block_tokens) {
            err = where + "block table too short for " + std::to_string(st.n_past + st.n) +
                  " tokens";
            return false;
        }
        for (int64_t b = 0; b < st.n_blocks; ++b)
            if (st.blocks[b] < 0 || st.blocks[b] >= pool.n_blocks) {
                err = where + "block id " + std::to_string(st.blocks[b]) + " outside the pool";
                return false;
            }
    }
    return true;
}

bool TextDecoder::ensure_ctx_scratch(int64_t ctx, std::string &err) {
    TextScratch &s = scratch_;
    if (ctx <= s.ctx_rows) return true;
    s.ctx_rows = 0;
    s.k_ctx = DeviceBuffer(*backend_, DType::F32, ctx, kv_dim_);
    s.v_ctx = DeviceBuffer(*backend_, DType::F32, ctx, kv_dim_);
    if (s.k_ctx.t.empty() || s.v_ctx.t.empty()) {
        err = "forward_batch: out of device memory for a context of " + std::to_string(ctx);
        return false;
    }
    s.ctx_rows = ctx;
    return true;
}

void TextDecoder::splice_image_rows(const int32_t *ids, int64_t n, const float *image_embeds,
                                    Tensor &x) {
    const size_t row_floats = size_t(cfg_.hidden_size);
    int64_t next_feature = 0;
    for (int64_t i = 0; i < n;) {
        if (ids[i] != image_token_id_) {
            ++i;
            continue;
        }
        int64_t run = 1;
        while (i + run < n && ids[i + run] == image_token_id_) ++run;
        Tensor dst = x.row_slice(i, run);
        backend_->upload_rows(dst, image_embeds + size_t(next_feature) * row_floats);
        next_feature += run;
        i += run;
    }
}

namespace {

struct RowGroup {
    int64_t r0 = 0, n = 0;
};

// Consecutive small steps share a group of at most kSmallStepRows rows; a
// larger step is a group of its own.
std::vector<RowGroup> row_groups(const std::vector<int64_t> &sizes) {
    std::vector<RowGroup> groups;
    RowGroup cur;
    int64_t r = 0;
    for (int64_t n : sizes) {
        const bool small = n <= kSmallStepRows;
        if (cur.n > 0 && (!small || cur.n + n > kSmallStepRows)) {
            groups.push_back(cur);
            cur = RowGroup{};
        }
        if (cur.n == 0) cur.r0 = r;
        cur.n += n;
        if (!small) {
            groups.push_back(cur);
            cur = RowGroup{};
        }
        r += n;
    }
    if (cur.n > 0) groups.push_back(cur);
    return groups;
}

// Copies `n` rows between a contiguous tensor (starting at row `r0`) and a
// sequence's token range [t0, t0 + n) in its blocks.
void copy_blocks(Backend &b, const Tensor &rows, int64_t r0, Tensor &pool_t, const int32_t *blocks,
                 int bt, int64_t t0, int64_t n, bool to_pool) {
    int64_t t = t0;
    while (t < t0 + n) {
        const int64_t in_block = t % bt;
        const int64_t run = std::min<int64_t>(bt - in_block, t0 + n - t);
        Tensor seq_rows = rows.row_slice(r0 + (t - t0), run);
        Tensor blk = pool_t.row_slice(int64_t(blocks[t / bt]) * bt + in_block, run);
        if (to_pool) b.copy(seq_rows, blk);
        else b.copy(blk, seq_rows);
        t += run;
    }
}

}  // namespace

bool TextDecoder::forward_batch(const std::vector<SeqStep> &steps, KvPool &pool,
                                std::vector<float> &logits, std::string &err) {
    if (!validate_batch(steps, pool, err)) return false;
    int64_t n = 0, n_out = 0, ctx_max = 0;
    std::vector<int64_t> sizes, offsets, out_rows;
    for (const SeqStep &st : steps) {
        offsets.push_back(n);
        sizes.push_back(st.n);
        n += st.n;
        if (st.want_logits) out_rows.push_back(n - 1);
        ctx_max = std::max(ctx_max, st.n_past + st.n);
    }
    n_out = int64_t(out_rows.size());
    if (!ensure_scratch(n, std::max<int64_t>(n_out, 1), err) ||
        !ensure_ctx_scratch(ctx_max, err))
        return false;

    Backend &b = *backend_;
    const TextConfig &c = cfg_;
    const float eps = c.rms_norm_eps;
    const int bt = pool.block_tokens;
    TextScratch &s = scratch_;
    TextStepViews t = step_views(n);
    Tensor &x = t.x, &xn = t.xn, &q = t.q, &k = t.k, &v = t.v, &attn = t.attn;
    Tensor &branch = t.branch, &branchn = t.branchn;

    // All rows' ids and positions (3 planes of n), in step order.
    std::vector<int32_t> ids(static_cast<size_t>(n)), positions(3 * static_cast<size_t>(n));
    for (size_t i = 0; i < steps.size(); ++i) {
        const SeqStep &st = steps[i];
        std::copy(st.ids, st.ids + st.n, ids.begin() + offsets[i]);
        for (int p = 0; p < 3; ++p)
            std::copy(st.positions + size_t(p) * size_t(st.n),
                      st.positions + size_t(p + 1) * size_t(st.n),
                      positions.begin() + size_t(p) * size_t(n) + size_t(offsets[i]));
    }
    const std::vector<RowGroup> groups = row_groups(sizes);
    auto matmul = [&](const Tensor &in, const Tensor &w, const Tensor &bias, Tensor &out) {
        for (const RowGroup &g : groups) {
            Tensor o = out.row_slice(g.r0, g.n);
            b.matmul(in.row_slice(g.r0, g.n), w, bias.empty() ? nullptr : &bias, o);
        }
    };

    TextRopeParams rope_q = rope_, rope_k = rope_;
    rope_k.n_head = c.num_key_value_heads;
    AttentionParams ap = attention_params();

    b.embed(embed_, ids.data(), n, x);                           // (n_tok, d_model)
    for (size_t i = 0; i < steps.size(); ++i)
        if (steps[i].n_image_rows > 0) {
            Tensor xs = x.row_slice(offsets[i], steps[i].n);
            splice_image_rows(steps[i].ids, steps[i].n, steps[i].image_embeds, xs);
        }

    for (size_t l = 0; l < layers_.size(); ++l) {
        const TextLayerTensors &lt = layers_[l];
        b.rms_norm(x, lt.input_norm, eps, xn);
        matmul(xn, lt.q, lt.q_bias, q);                          // (n_tok, n_head*hd)
        matmul(xn, lt.k, lt.k_bias, k);                          // (n_tok, n_kv_head*hd)
        matmul(xn, lt.v, lt.v_bias, v);
        b.rope_text(q, positions.data(), rope_q);
        b.rope_text(k, positions.data(), rope_k);
        for (size_t i = 0; i < steps.size(); ++i) {
            const SeqStep &st = steps[i];
            const int64_t ctx = st.n_past + st.n;
            copy_blocks(b, k, offsets[i], pool.k[l].t, st.blocks, bt, st.n_past, st.n, true);
            copy_blocks(b, v, offsets[i], pool.v[l].t, st.blocks, bt, st.n_past, st.n, true);
            Tensor k_ctx = s.k_ctx.t.row_slice(0, ctx), v_ctx = s.v_ctx.t.row_slice(0, ctx);
            copy_blocks(b, k_ctx, 0, pool.k[l].t, st.blocks, bt, 0, ctx, false);
            copy_blocks(b, v_ctx, 0, pool.v[l].t, st.blocks, bt, 0, ctx, false);
            ap.kv_offset = st.n_past;
            Tensor attn_rows = attn.row_slice(offsets[i], st.n);
            b.attention(q.row_slice(offsets[i], st.n), k_ctx, v_ctx, ap, attn_rows);
        }
        matmul(attn, lt.o, Tensor{}, branch);                    // (n_tok, d_model)
        b.rms_norm(branch, lt.post_self_attn_norm, eps, branchn);
        b.add(x, branchn, x);

        mlp_block(lt, t, [&](const Tensor &in, const Tensor &w, Tensor &out) {
            matmul(in, w, Tensor{}, out);
        });
    }

    logits.clear();
    if (n_out == 0) return true;
    // Final norm and lm_head on the last row of each step that wants logits,
    // in groups of at most kSmallStepRows rows (each row alone is a small call).
    Tensor last = xn.row_slice(0, n_out), last_n = branch.row_slice(0, n_out);
    for (int64_t j = 0; j < n_out; ++j) {
        Tensor dst = last.row_slice(j, 1);
        b.copy(x.row_slice(out_rows[size_t(j)], 1), dst);
    }
    b.rms_norm(last, norm_, eps, last_n);                        // (n_out, d_model)
    Tensor logits_dev = s.logits.t.row_slice(0, n_out);
    for (int64_t r0 = 0; r0 < n_out; r0 += kSmallStepRows) {
        const int64_t m = std::min<int64_t>(kSmallStepRows, n_out - r0);
        Tensor o = logits_dev.row_slice(r0, m);
        b.matmul(last_n.row_slice(r0, m), lm_head_, nullptr, o);  // (n_out, vocab)
    }
    logits.resize(size_t(n_out) * size_t(c.vocab_size));
    b.download_rows(logits.data(), logits_dev);
    return true;
}

}  // namespace vlm
