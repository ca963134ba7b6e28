// cpu_matmul_scalar.cpp: portable "rows" matmul kernel (see cpu_matmul.h)
// for CPUs without AVX2: 4 weight rows per pass over each token's
// activations, f32 accumulation, weights widened one element at a time.
#include "backend/cpu_matmul.h"
#include "core/cpu_ops_ref.h"

#include <algorithm>

namespace vlm {

void matmul_rows_scalar(const MatmulJob &j, int64_t t0, int64_t t1, int64_t o0, int64_t o1)
{
    Tensor w;
    w.data = const_cast<void *>(j.w);
    w.dtype = j.w_dtype;
    w.stride = j.w_stride;
    for (int64_t o = o0; o < o1; o += 4) {
        int rows = int(std::min<int64_t>(4, o1 - o));
        for (int64_t t = t0; t < t1; t++) {
            const float *x = j.x + size_t(t) * size_t(j.x_stride);
            float acc[4] = {0, 0, 0, 0};
            for (int64_t c = 0; c < j.k; c++)
                for (int r = 0; r < rows; r++) acc[r] += tensor_elem(w, o + r, c) * x[c];
            float *y = j.y + size_t(t) * size_t(j.y_stride) + o;
            for (int r = 0; r < rows; r++) y[r] = acc[r];
        }
    }
}

}  // namespace vlm
