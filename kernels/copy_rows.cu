// copy_rows.cu: dst rows = src rows, same dtype and cols, any strides (the
// KV-cache append: (n_tok, n_kv_head*head_dim) f32 k/v views into the cache;
// also Backend::copy). Overwrites dst. Grid: one thread per 16 bytes when
// both row starts and the row length are 16-byte multiples, else per 4 or 1
// bytes, grid-stride over <= 65535 blocks of 256 threads. Pure bandwidth.
#include "kernel_common.cuh"

namespace vlm::kern {
namespace {

constexpr int kThreads = 256;

template <typename Word>
__global__ void copy_rows_kernel(const char *src, size_t src_pitch, char *dst, size_t dst_pitch,
                                 int64_t rows, int64_t words_per_row)
{
    const int64_t total = rows * words_per_row;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
         i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t r = i / words_per_row, c = i % words_per_row;
        reinterpret_cast<Word *>(dst + size_t(r) * dst_pitch)[c] =
            reinterpret_cast<const Word *>(src + size_t(r) * src_pitch)[c];
    }
}

template <typename Word>
void launch_words(const CopyRowsParams &p, size_t row_bytes, cudaStream_t s)
{
    int64_t per_row = int64_t(row_bytes / sizeof(Word));
    unsigned blocks = unsigned(std::min<int64_t>(65535, ceil_div(p.src.rows * per_row, kThreads)));
    VLM_LAUNCH((copy_rows_kernel<Word>), dim3(blocks), dim3(kThreads), 0, s)(
        static_cast<const char *>(p.src.data), p.src.row_bytes(), static_cast<char *>(p.dst.data),
        p.dst.row_bytes(), p.src.rows, per_row);
}

}  // namespace

bool launch_copy_rows(const CopyRowsParams &p, cudaStream_t s, std::string &err)
{
    if (p.src.rows == 0 || p.src.cols == 0) return true;
    const size_t row_bytes = size_t(p.src.cols) * dtype_size(p.src.dtype);
    auto all_multiple = [&](size_t m) {
        return row_bytes % m == 0 && p.src.row_bytes() % m == 0 && p.dst.row_bytes() % m == 0 &&
               reinterpret_cast<uintptr_t>(p.src.data) % m == 0 &&
               reinterpret_cast<uintptr_t>(p.dst.data) % m == 0;
    };
    if (all_multiple(16))
        launch_words<uint4>(p, row_bytes, s);
    else if (all_multiple(4))
        launch_words<uint32_t>(p, row_bytes, s);
    else
        launch_words<uint8_t>(p, row_bytes, s);
    return launch_ok("copy_rows", err);
}

}  // namespace vlm::kern
