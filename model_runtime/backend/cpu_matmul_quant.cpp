// cpu_matmul_quant.cpp: what the Q8/Q4 kernels share (cpu_matmul_quant.h):
// the activation rounding, done with core's quantize_x_block itself so the
// kernels see exactly the quants the reference defines, and the scalar
// kernel, the fallback for CPUs without AVX2.
#include "backend/cpu_matmul_quant.h"
#include "core/cpu_ops_ref.h"
#include "core/quant.h"

#include <algorithm>

namespace vlm {

void QuantXBuffers::reserve(int64_t n, int64_t nb, QuantizedX &qx)
{
    const size_t blocks = size_t(n) * size_t(nb);
    if (q.size() < blocks * 32) q.resize(blocks * 32);  // grow only: reused across calls
    if (scale.size() < blocks) scale.resize(blocks);
    if (sum8.size() < blocks) sum8.resize(blocks);
    qx.n = n;
    qx.nb = nb;
    qx.q = q.data();
    qx.scale = scale.data();
    qx.sum8 = sum8.data();
}

void quantize_x_rows(const MatmulJob &job, const QuantizedX &qx, bool with_offset, int64_t t0, int64_t t1)
{
    for (int64_t t = t0; t < t1; t++) {
        const float *x = job.x + size_t(t) * size_t(job.x_stride);
        for (int64_t b = 0; b < qx.nb; b++) {
            const size_t blk = size_t(t) * size_t(qx.nb) + size_t(b);
            int8_t *q = qx.q + blk * 32;
            quantize_x_block(x + b * 32, std::min<int64_t>(32, job.k - b * 32), q, qx.scale[blk]);
            if (with_offset) {
                int32_t sum = 0;
                for (int i = 0; i < 32; i++) sum += q[i];
                qx.sum8[blk] = 8 * sum;
            }
        }
    }
}

void matmul_quant_scalar(const MatmulJob &job, const uint16_t *scales, const QuantizedX &qx, int64_t t0,
                         int64_t t1, int64_t o0, int64_t o1)
{
    const bool q4 = job.w_dtype == DType::Q4;
    const size_t row_bytes = size_t(qx.nb) * (q4 ? 16 : 32);
    for (int64_t o = o0; o < o1; o++) {
        const uint8_t *w = static_cast<const uint8_t *>(job.w) + size_t(o) * row_bytes;
        const uint16_t *sw = scales + size_t(o) * size_t(qx.nb);
        for (int64_t t = t0; t < t1; t++) {
            float acc = 0.0f;
            for (int64_t b = 0; b < qx.nb; b++) {
                const size_t blk = size_t(t) * size_t(qx.nb) + size_t(b);
                const int8_t *xq = qx.q + blk * 32;
                int32_t isum = 0;
                if (q4) {
                    const uint8_t *wb = w + b * 16;
                    for (int i = 0; i < 16; i++)
                        isum += (int(wb[i] & 15) - 8) * xq[i] + (int(wb[i] >> 4) - 8) * xq[i + 16];
                } else {
                    const int8_t *wb = reinterpret_cast<const int8_t *>(w + b * 32);
                    for (int i = 0; i < 32; i++) isum += wb[i] * xq[i];
                }
                acc += (f16_to_f32(sw[b]) * qx.scale[blk]) * float(isum);
            }
            job.y[size_t(t) * size_t(job.y_stride) + size_t(o)] = acc;
        }
    }
}

}  // namespace vlm
