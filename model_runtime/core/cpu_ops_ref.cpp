// cpu_ops_ref.cpp: plain reference versions of every backend op (see
// cpu_ops_ref.h). Clarity over speed; sums in double. The fast cpu backend
// must agree with these to about 1e-6 relative.
#include "core/cpu_ops_ref.h"
#include "core/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace vlm {

float bf16_to_f32(uint16_t v)
{
    uint32_t bits = uint32_t(v) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

float f16_to_f32(uint16_t h)
{
    uint32_t sign = uint32_t(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);  // inf / nan
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {  // subnormal half: normalise
        int e = -1;
        do {
            e++;
            man <<= 1;
        } while ((man & 0x400) == 0);
        bits = sign | uint32_t(112 - e) << 23 | ((man & 0x3ff) << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

uint16_t f32_to_bf16(float f)
{
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return uint16_t((bits >> 16) | 0x40);  // quiet nan
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return uint16_t(bits >> 16);
}

uint16_t f32_to_f16(float f)
{
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    uint16_t sign = uint16_t((bits >> 16) & 0x8000);
    uint32_t abs = bits & 0x7fffffffu;
    if (abs >= 0x7f800000u) return uint16_t(sign | 0x7c00 | (abs > 0x7f800000u ? 0x200 : 0));
    if (abs >= 0x477ff000u) return uint16_t(sign | 0x7c00);  // rounds to inf
    if (abs < 0x38800000u) {  // subnormal or zero in half
        float a;
        std::memcpy(&a, &abs, 4);
        // a * 2^24 rounded to nearest even gives the subnormal mantissa
        float scaled = std::nearbyint(a * 16777216.0f);
        return uint16_t(sign | uint16_t(scaled));
    }
    uint32_t man = abs & 0x7fffffu;
    uint32_t exp = (abs >> 23) - 112;
    uint32_t h = (exp << 10) | (man >> 13);
    uint32_t rest = man & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
    return uint16_t(sign | h);
}

float tensor_elem(const Tensor &t, int64_t r, int64_t c)
{
    size_t i = size_t(r) * size_t(t.stride) + size_t(c);
    switch (t.dtype) {
    case DType::F32: return static_cast<const float *>(t.data)[i];
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t *>(t.data)[i]);
    case DType::F16: return f16_to_f32(static_cast<const uint16_t *>(t.data)[i]);
    case DType::I32: return float(static_cast<const int32_t *>(t.data)[i]);
    case DType::Q8:
    case DType::Q4: return quant_elem(t, r, c);
    }
    return 0.0f;
}

static float *frow(Tensor &t, int64_t r)
{
    return static_cast<float *>(t.data) + size_t(r) * size_t(t.stride);
}

static const float *frow(const Tensor &t, int64_t r)
{
    return static_cast<const float *>(t.data) + size_t(r) * size_t(t.stride);
}

void rope_inv_freq(double theta, int dim, float *inv_freq)
{
    for (int i = 0; i < dim / 2; i++) {
        float exponent = float(2 * i) / float(dim);
        float p = float(std::pow(double(float(theta)), double(exponent)));
        inv_freq[i] = 1.0f / p;
    }
}

void bicubic_weights(float t, float w[4])
{
    // PyTorch's cubic convolution, A = -0.75, in float32 with the fused
    // multiply-adds its vectorised CPU grid_sampler ends up with (verified
    // bit-for-bit against torch 2.x on the taps).
    const float A = -0.75f;
    auto far = [A](float x) {  // 1 < x < 2
        return ((A * x - 5.0f * A) * x + 8.0f * A) * x - 4.0f * A;
    };
    auto near = [A](float x) {  // 0 <= x <= 1
        float inner = std::fma(A + 2.0f, x, -(A + 3.0f));
        return std::fma(inner * x, x, 1.0f);
    };
    w[0] = far(t + 1.0f);
    w[1] = near(t);
    w[2] = near(1.0f - t);
    w[3] = far(2.0f - t);
}

void ref_matmul(const Tensor &x, const Tensor &w, const Tensor *bias, Tensor &y)
{
    if (dtype_is_quantized(w.dtype)) {
        ref_matmul_quant(x, w, bias, y);
        return;
    }
    for (int64_t i = 0; i < x.rows; i++) {
        const float *xr = frow(x, i);
        float *yr = frow(y, i);
        for (int64_t o = 0; o < w.rows; o++) {
            double acc = 0.0;
            for (int64_t c = 0; c < x.cols; c++) acc += double(xr[c]) * double(tensor_elem(w, o, c));
            float v = float(acc);
            if (bias) v += tensor_elem(*bias, 0, o);
            yr[o] = v;
        }
    }
}

void ref_rms_norm(const Tensor &x, const Tensor &w, float eps, Tensor &y)
{
    for (int64_t i = 0; i < x.rows; i++) {
        const float *xr = frow(x, i);
        float *yr = frow(y, i);
        double ss = 0.0;
        for (int64_t c = 0; c < x.cols; c++) ss += double(xr[c]) * double(xr[c]);
        float mean = float(ss / double(x.cols));
        float inv = 1.0f / std::sqrt(mean + eps);
        for (int64_t c = 0; c < x.cols; c++) yr[c] = tensor_elem(w, 0, c) * (xr[c] * inv);
    }
}

void ref_layer_norm(const Tensor &x, const Tensor &w, const Tensor &b, float eps,
                    Tensor &y)
{
    for (int64_t i = 0; i < x.rows; i++) {
        const float *xr = frow(x, i);
        float *yr = frow(y, i);
        double s = 0.0;
        for (int64_t c = 0; c < x.cols; c++) s += xr[c];
        double mean = s / double(x.cols);
        double v = 0.0;
        for (int64_t c = 0; c < x.cols; c++) v += (xr[c] - mean) * (xr[c] - mean);
        double var = v / double(x.cols);  // biased, like torch
        double rstd = 1.0 / std::sqrt(var + double(eps));
        for (int64_t c = 0; c < x.cols; c++)
            yr[c] = float((xr[c] - mean) * rstd) * tensor_elem(w, 0, c) + tensor_elem(b, 0, c);
    }
}

void ref_add(const Tensor &a, const Tensor &b, Tensor &y)
{
    for (int64_t i = 0; i < a.rows; i++) {
        const float *ar = frow(a, i);
        const float *br = frow(b, i);
        float *yr = frow(y, i);
        for (int64_t c = 0; c < a.cols; c++) yr[c] = ar[c] + br[c];
    }
}

void ref_silu_mul(const Tensor &gate, const Tensor &up, Tensor &y)
{
    for (int64_t i = 0; i < gate.rows; i++) {
        const float *g = frow(gate, i);
        const float *u = frow(up, i);
        float *yr = frow(y, i);
        for (int64_t c = 0; c < gate.cols; c++) {
            float s = g[c] / (1.0f + std::exp(-g[c]));
            yr[c] = s * u[c];
        }
    }
}

void ref_gelu(const Tensor &x, Tensor &y)
{
    for (int64_t i = 0; i < x.rows; i++) {
        const float *xr = frow(x, i);
        float *yr = frow(y, i);
        for (int64_t c = 0; c < x.cols; c++) {
            double v = xr[c];
            yr[c] = float(0.5 * v * (1.0 + std::erf(v * M_SQRT1_2)));
        }
    }
}

void ref_embed(const Tensor &table, const int32_t *ids, int64_t n, Tensor &y)
{
    for (int64_t i = 0; i < n; i++) {
        float *yr = frow(y, i);
        for (int64_t c = 0; c < table.cols; c++) yr[c] = tensor_elem(table, ids[i], c);
    }
}

void ref_rope_text(Tensor &x, const int32_t *positions, const TextRopeParams &p)
{
    int n_freq = p.rotary_dim / 2;
    std::vector<float> inv_freq(static_cast<size_t>(n_freq));
    rope_inv_freq(p.theta, p.rotary_dim, inv_freq.data());
    int64_t n = x.rows;
    for (int64_t r = 0; r < n; r++) {
        float *xr = frow(x, r);
        for (int i = 0; i < n_freq; i++) {
            int plane = i < p.section[0] ? 0 : (i < p.section[0] + p.section[1] ? 1 : 2);
            float angle = float(positions[size_t(plane) * size_t(n) + size_t(r)]) * inv_freq[size_t(i)];
            float cs = std::cos(angle), sn = std::sin(angle);
            for (int h = 0; h < p.n_head; h++) {
                float *v = xr + size_t(h) * size_t(p.head_dim) + size_t(2 * i);
                float a = v[0], b = v[1];
                v[0] = a * cs - b * sn;
                v[1] = b * cs + a * sn;
            }
        }
    }
}

void ref_rope_vision(Tensor &x, const int32_t *row, const int32_t *col, int n_head,
                     int head_dim, double theta)
{
    int quarter = head_dim / 4, half = head_dim / 2;
    std::vector<float> inv_freq(static_cast<size_t>(quarter));
    rope_inv_freq(theta, half, inv_freq.data());
    for (int64_t r = 0; r < x.rows; r++) {
        float *xr = frow(x, r);
        for (int d = 0; d < half; d++) {
            float angle = d < quarter ? float(row[r]) * inv_freq[size_t(d)]
                                      : float(col[r]) * inv_freq[size_t(d - quarter)];
            float cs = std::cos(angle), sn = std::sin(angle);
            for (int h = 0; h < n_head; h++) {
                float *v = xr + size_t(h) * size_t(head_dim);
                float a = v[d], b = v[d + half];
                v[d] = a * cs - b * sn;
                v[d + half] = b * cs + a * sn;
            }
        }
    }
}

void ref_attention(const Tensor &q, const Tensor &k, const Tensor &v,
                   const AttentionParams &p, Tensor &out)
{
    int64_t n_q = q.rows, n_kv = k.rows;
    int group = p.n_head / p.n_kv_head;
    std::vector<float> scores(static_cast<size_t>(n_kv));
    // Visible key range [lo, hi) of each query row.
    std::vector<int64_t> lo(static_cast<size_t>(n_q)), hi(static_cast<size_t>(n_q));
    if (p.causal) {
        for (int64_t i = 0; i < n_q; i++) {
            lo[size_t(i)] = 0;
            hi[size_t(i)] = std::min<int64_t>(n_kv, p.kv_offset + i + 1);
        }
    } else if (p.n_segments > 0) {
        int64_t start = 0;
        for (int s = 0; s < p.n_segments; s++) {
            for (int64_t i = start; i < start + p.segments[s]; i++) {
                lo[size_t(i)] = start;
                hi[size_t(i)] = start + p.segments[s];
            }
            start += p.segments[s];
        }
    } else {
        for (int64_t i = 0; i < n_q; i++) {
            lo[size_t(i)] = 0;
            hi[size_t(i)] = n_kv;
        }
    }
    for (int h = 0; h < p.n_head; h++) {
        int kh = h / group;
        for (int64_t i = 0; i < n_q; i++) {
            const float *qr = frow(q, i) + size_t(h) * size_t(p.head_dim);
            float mx = -INFINITY;
            for (int64_t j = lo[size_t(i)]; j < hi[size_t(i)]; j++) {
                const float *kr = frow(k, j) + size_t(kh) * size_t(p.head_dim);
                double dot = 0.0;
                for (int d = 0; d < p.head_dim; d++) dot += double(qr[d]) * double(kr[d]);
                float s = float(dot) * p.scale;
                scores[size_t(j)] = s;
                mx = std::max(mx, s);
            }
            double sum = 0.0;
            for (int64_t j = lo[size_t(i)]; j < hi[size_t(i)]; j++) {
                float e = std::exp(scores[size_t(j)] - mx);
                scores[size_t(j)] = e;
                sum += e;
            }
            float inv = float(1.0 / sum);
            float *orow = frow(out, i) + size_t(h) * size_t(p.head_dim);
            for (int d = 0; d < p.head_dim; d++) {
                double acc = 0.0;
                for (int64_t j = lo[size_t(i)]; j < hi[size_t(i)]; j++)
                    acc += double(scores[size_t(j)] * inv) *
                           double(frow(v, j)[size_t(kh) * size_t(p.head_dim) + size_t(d)]);
                orow[d] = float(acc);
            }
        }
    }
}

void ref_add_pos_embed_bicubic(const Tensor &table, int side, const int32_t *row,
                               const int32_t *col, const int32_t *grid_h,
                               const int32_t *grid_w, Tensor &y)
{
    int64_t d = table.cols;
    for (int64_t i = 0; i < y.rows; i++) {
        // grid_sample's normalised coordinate, then its align_corners=False
        // unnormalise (the fma is what torch's kernel computes).
        float gx = (float(col[i]) + 0.5f) / float(grid_w[i]) * 2.0f - 1.0f;
        float gy = (float(row[i]) + 0.5f) / float(grid_h[i]) * 2.0f - 1.0f;
        float half = float(side) / 2.0f;
        float sx = std::fma(gx + 1.0f, half, -0.5f);
        float sy = std::fma(gy + 1.0f, half, -0.5f);
        float fx0 = std::floor(sx), fy0 = std::floor(sy);
        float wx[4], wy[4];
        bicubic_weights(sx - fx0, wx);
        bicubic_weights(sy - fy0, wy);
        int64_t x0 = int64_t(fx0), y0 = int64_t(fy0);
        auto clampi = [side](int64_t v) { return std::clamp<int64_t>(v, 0, side - 1); };
        float *yr = frow(y, i);
        for (int64_t c = 0; c < d; c++) {
            float rows4[4];
            for (int a = 0; a < 4; a++) {
                int64_t ty = clampi(y0 - 1 + a);
                float acc = 0.0f;
                for (int b = 0; b < 4; b++) {
                    int64_t tx = clampi(x0 - 1 + b);
                    float tap = tensor_elem(table, ty * side + tx, c);
                    acc = b == 0 ? tap * wx[0] : std::fma(tap, wx[b], acc);
                }
                rows4[a] = acc;
            }
            float s = rows4[0] * wy[0];
            for (int a = 1; a < 4; a++) s = std::fma(rows4[a], wy[a], s);
            yr[c] += s;
        }
    }
}

void ref_copy(const Tensor &src, Tensor &dst)
{
    size_t esz = dtype_size(src.dtype);
    for (int64_t i = 0; i < src.rows; i++)
        std::memcpy(static_cast<char *>(dst.data) + size_t(i) * dst.row_bytes(),
                    static_cast<const char *>(src.data) + size_t(i) * src.row_bytes(),
                    size_t(src.cols) * esz);
}

}  // namespace vlm
