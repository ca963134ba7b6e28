// quant.cpp: see quant.h. The quantizer and the reference product; plain
// scalar code, the definition the kernels are held to.
#include "core/quant.h"
#include "core/cpu_ops_ref.h"

#include <algorithm>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <cmath>
#include <vector>

namespace vlm {

bool dtype_is_quantized(DType t) { return t == DType::Q8 || t == DType::Q4; }

int64_t quant_blocks(int64_t cols) { return (cols + kQuantBlock - 1) / kQuantBlock; }

int64_t quant_padded_cols(int64_t cols) { return quant_blocks(cols) * kQuantBlock; }

size_t quant_row_bytes(DType t, int64_t cols)
{
    const size_t padded = size_t(quant_padded_cols(cols));
    return t == DType::Q4 ? padded / 2 : padded;
}

size_t quant_tensor_bytes(DType t, int64_t rows, int64_t cols)
{
    return size_t(rows) * (quant_row_bytes(t, cols) + size_t(quant_blocks(cols)) * sizeof(uint16_t));
}

void quant_set_layout(Tensor &t)
{
    t.stride = quant_padded_cols(t.cols);
    t.scales = t.data ? static_cast<char *>(t.data) + size_t(t.rows) * quant_row_bytes(t.dtype, t.cols) : nullptr;
}

namespace {

struct BlockFit {
    float    q[32];     // the quants, as floats (exact small integers)
    uint16_t scale_f16;
    double   sse;
};

// q = clamp(rne(w / d)) for d = f16(scale), and the block's squared error.
// Rounds by adding and subtracting 1.5 * 2^23 (exact round-to-nearest-even
// for |v| < 2^22, so v is clamped first; a NaN weight clamps to qmin). SSE2
// (every x86-64) four lanes at a time, as the plain loop does them: this
// runs ~20 times per block over every weight at load.
inline void fit_with_scale(const float *w, float scale, int qmin, int qmax, BlockFit &out)
{
    scale = std::min(std::fabs(scale), 65504.0f) * (scale < 0 ? -1.0f : 1.0f);
    out.scale_f16 = f32_to_f16(scale);
    const float d = f16_to_f32(out.scale_f16);
    const float inv = d != 0.0f ? 1.0f / d : 0.0f;
    float *qf = out.q, lanes[4];
#ifdef __SSE2__
    const __m128 vinv = _mm_set1_ps(inv), vd = _mm_set1_ps(d), lo = _mm_set1_ps(float(qmin)),
                 hi = _mm_set1_ps(float(qmax)), magic = _mm_set1_ps(12582912.0f);
    __m128 acc = _mm_setzero_ps();
    for (int i = 0; i < 32; i += 4) {
        const __m128 wv = _mm_loadu_ps(w + i);
        __m128 v = _mm_min_ps(_mm_max_ps(_mm_mul_ps(wv, vinv), lo), hi);  // maxps(NaN, lo) = lo
        v = _mm_sub_ps(_mm_add_ps(v, magic), magic);
        _mm_storeu_ps(qf + i, v);
        const __m128 e = _mm_sub_ps(wv, _mm_mul_ps(vd, v));
        acc = _mm_add_ps(acc, _mm_mul_ps(e, e));
    }
    _mm_storeu_ps(lanes, acc);
#else
    const float lo = float(qmin), hi = float(qmax), magic = 12582912.0f;
    lanes[0] = lanes[1] = lanes[2] = lanes[3] = 0.0f;
    for (int i = 0; i < 32; i++) {
        float v = w[i] * inv;
        v = v > lo ? v : lo;
        v = v < hi ? v : hi;
        qf[i] = (v + magic) - magic;
        const float e = w[i] - d * qf[i];
        lanes[i % 4] += e * e;
    }
#endif
    out.sse = double((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]));
}

// The least-squares scale for fixed quants: sum(w q) / sum(q^2).
float refit_scale(const float *w, const float *q, float fallback)
{
    double wq = 0.0, qq = 0.0;
    for (int i = 0; i < 32; i++) {
        wq += double(w[i]) * double(q[i]);
        qq += double(q[i]) * double(q[i]);
    }
    return qq > 0.0 ? float(wq / qq) : fallback;
}

void quantize_block(const float *w, DType t, BlockFit &best)
{
    float amax = 0.0f, signed_max = 0.0f;
    for (int i = 0; i < 32; i++)
        if (std::fabs(w[i]) > amax) {
            amax = std::fabs(w[i]);
            signed_max = w[i];
        }
    best.sse = HUGE_VAL;
    if (!(amax > 0.0f) || !std::isfinite(amax)) {  // all zero (or not a number): zero block
        std::fill(best.q, best.q + 32, 0.0f);
        best.scale_f16 = 0;
        best.sse = 0.0;
        return;
    }
    // Level counts to try: the extreme value lands on +-levels.
    static const float q8_levels[] = {127.0f};
    static const float q4_levels[] = {6.0f, 6.25f, 6.5f, 6.75f, 7.0f, 7.25f, 7.5f, 7.75f, 8.0f, 8.5f};
    const bool q4 = t == DType::Q4;
    const int qmin = q4 ? -8 : -127, qmax = q4 ? 7 : 127;
    const float *levels = q4 ? q4_levels : q8_levels;
    const int n_levels = q4 ? 10 : 1;
    BlockFit cand;
    for (int i = 0; i < n_levels; i++) {
        for (int sign = 0; sign < (q4 ? 2 : 1); sign++) {  // Q4: the extreme on the +7 or the -8 side
            fit_with_scale(w, (sign ? -signed_max : signed_max) / levels[i], qmin, qmax, cand);
            if (cand.sse < best.sse) best = cand;
        }
    }
    // Then the least-squares scale for the winner's quants, twice.
    for (int round = 0; round < 2; round++) {
        fit_with_scale(w, refit_scale(w, best.q, f16_to_f32(best.scale_f16)), qmin, qmax, cand);
        if (!(cand.sse < best.sse)) break;
        best = cand;
    }
}

float src_elem(const void *src, DType dt, size_t i)
{
    switch (dt) {
    case DType::F32: return static_cast<const float *>(src)[i];
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t *>(src)[i]);
    case DType::F16: return f16_to_f32(static_cast<const uint16_t *>(src)[i]);
    default: return 0.0f;
    }
}

uint8_t *quant_row(const Tensor &t, int64_t r)
{
    return static_cast<uint8_t *>(t.data) + size_t(r) * quant_row_bytes(t.dtype, t.cols);
}

uint16_t *scale_row(const Tensor &t, int64_t r)
{
    return static_cast<uint16_t *>(t.scales) + size_t(r) * size_t(quant_blocks(t.cols));
}

}  // namespace

void quantize_rows(const void *src, DType src_dtype, int64_t src_stride, Tensor &dst, int64_t r0, int64_t r1)
{
    const int64_t nb = quant_blocks(dst.cols);
    float w[32];
    BlockFit fit;
    for (int64_t r = r0; r < r1; r++) {
        uint8_t *qr = quant_row(dst, r);
        uint16_t *sr = scale_row(dst, r);
        for (int64_t b = 0; b < nb; b++) {
            for (int i = 0; i < 32; i++) {
                const int64_t c = b * 32 + i;
                w[i] = c < dst.cols ? src_elem(src, src_dtype, size_t(r) * size_t(src_stride) + size_t(c)) : 0.0f;
            }
            quantize_block(w, dst.dtype, fit);
            sr[b] = fit.scale_f16;
            if (dst.dtype == DType::Q8) {
                for (int i = 0; i < 32; i++) qr[b * 32 + i] = uint8_t(int8_t(fit.q[i]));
            } else {
                for (int i = 0; i < 16; i++)
                    qr[b * 16 + i] = uint8_t((int(fit.q[i]) + 8) | ((int(fit.q[i + 16]) + 8) << 4));
            }
        }
    }
}

float quant_elem(const Tensor &t, int64_t r, int64_t c)
{
    const float d = f16_to_f32(scale_row(t, r)[c / 32]);
    const uint8_t *qr = quant_row(t, r);
    int q;
    if (t.dtype == DType::Q8) {
        q = int8_t(qr[c]);
    } else {
        const int64_t b = c / 32, i = c % 32;
        const uint8_t byte = qr[b * 16 + (i % 16)];
        q = int(i < 16 ? byte & 15 : byte >> 4) - 8;
    }
    return d * float(q);
}

void quantize_x_block(const float *x, int64_t n, int8_t q[32], float &scale)
{
    float amax = 0.0f;
    for (int64_t i = 0; i < n; i++) amax = std::max(amax, std::fabs(x[i]));
    const float inv = 127.0f / amax;
    if (!(amax > 0.0f) || !(inv <= 3.4028235e38f)) {  // zero, or so small that 127 / amax overflows
        std::fill(q, q + 32, int8_t(0));
        scale = 0.0f;
        return;
    }
    for (int64_t i = 0; i < 32; i++) {
        const float v = i < n ? x[i] * inv : 0.0f;
        q[i] = v == v ? int8_t(std::nearbyint(v)) : int8_t(0);  // a NaN activation counts as 0
    }
    scale = amax / 127.0f;
}

void ref_matmul_quant(const Tensor &x, const Tensor &w, const Tensor *bias, Tensor &y)
{
    const int64_t nb = quant_blocks(w.cols);
    int8_t qx[32];
    for (int64_t t = 0; t < x.rows; t++) {
        const float *xr = static_cast<const float *>(x.data) + size_t(t) * size_t(x.stride);
        float *yr = static_cast<float *>(y.data) + size_t(t) * size_t(y.stride);
        for (int64_t o = 0; o < w.rows; o++) yr[o] = 0.0f;
        std::vector<double> acc(size_t(w.rows), 0.0);
        for (int64_t b = 0; b < nb; b++) {
            float sx;
            quantize_x_block(xr + b * 32, std::min<int64_t>(32, x.cols - b * 32), qx, sx);
            for (int64_t o = 0; o < w.rows; o++) {
                const float sw = f16_to_f32(scale_row(w, o)[b]);
                const uint8_t *qr = quant_row(w, o);
                int32_t isum = 0;
                for (int i = 0; i < 32; i++) {
                    int qw;
                    if (w.dtype == DType::Q8) qw = int8_t(qr[b * 32 + i]);
                    else qw = int(i < 16 ? qr[b * 16 + i] & 15 : qr[b * 16 + i - 16] >> 4) - 8;
                    isum += qw * qx[i];
                }
                acc[size_t(o)] += double(sw * sx) * double(isum);
            }
        }
        for (int64_t o = 0; o < w.rows; o++) {
            float v = float(acc[size_t(o)]);
            if (bias) v += tensor_elem(*bias, 0, o);
            yr[o] = v;
        }
    }
}

}  // namespace vlm
