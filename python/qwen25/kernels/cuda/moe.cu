// MoE token permutation: rows of the hidden states are grouped by expert (for a grouped matmul)
// and combined back. The sort itself (a stable argsort of the flat expert ids) is done by torch;
// these kernels move the rows. With N tokens, top-K experts each, and flat index f = t * K + k:
//   order[j]   = the flat index of the j-th row of the permuted buffer (sorted by expert)
//   src_row[j] = order[j] / K   (the token of that row)
//   pos[f]     = the permuted row holding flat index f   (the inverse of order)
// Rows are [*, n] contiguous. Empty expert groups need nothing special: they own no rows.

// dst[j, :] = scale[j] * src[src_row[j], :]   (no scaling when has_scale == 0)
// Launch: one block per destination row (grid-stride), at most QWEN25_ROW_THREADS threads.
template <typename T>
__device__ void moe_gather(const T* __restrict__ src, const i64* __restrict__ src_row,
                           const float* __restrict__ scale, int has_scale, T* __restrict__ dst,
                           i64 rows, int n) {
    for (i64 j = blockIdx.x; j < rows; j += gridDim.x) {
        const T* s = src + src_row[j] * n;
        T* d = dst + j * n;
        if (has_scale) {
            const float f = scale[j];
            for (int i = threadIdx.x; i < n; i += blockDim.x) d[i] = from_float<T>(to_float(s[i]) * f);
        } else {
            for (int i = threadIdx.x; i < n; i += blockDim.x) d[i] = s[i];
        }
    }
}

// dst[t, :] = sum_k scale[t*K + k] * src[pos[t*K + k], :]   (fp32 sum in k order; scale 1 when
// has_scale == 0). A gather, not a scatter: deterministic, no atomics.
// Launch: one block per token (grid-stride), at most QWEN25_ROW_THREADS threads.
template <typename T>
__device__ void moe_combine(const T* __restrict__ src, const i64* __restrict__ pos,
                            const float* __restrict__ scale, int has_scale, T* __restrict__ dst,
                            i64 tokens, int K, int n) {
    for (i64 t = blockIdx.x; t < tokens; t += gridDim.x) {
        T* d = dst + t * n;
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            float acc = 0.0f;
            for (int k = 0; k < K; ++k) {
                const i64 f = t * K + k;
                const float v = to_float(src[pos[f] * n + i]);
                acc += has_scale ? v * scale[f] : v;
            }
            d[i] = from_float<T>(acc);
        }
    }
}

// dscale[f] = sum_i dout[f / K, i] * src[pos[f], i]   (fp32)
// Launch: one block per flat index (grid-stride), blockDim a multiple of 32, at most
// QWEN25_ROW_THREADS.
template <typename T>
__device__ void moe_scale_grad(const T* __restrict__ dout, const T* __restrict__ src,
                               const i64* __restrict__ pos, float* __restrict__ dscale, i64 tokens,
                               int K, int n) {
    __shared__ float scratch[32];
    const i64 total = tokens * K;
    for (i64 f = blockIdx.x; f < total; f += gridDim.x) {
        const T* a = dout + (f / K) * n;
        const T* b = src + pos[f] * n;
        float acc = 0.0f;
        for (int i = threadIdx.x; i < n; i += blockDim.x) acc += to_float(a[i]) * to_float(b[i]);
        acc = block_sum(acc, scratch);
        if (threadIdx.x == 0) dscale[f] = acc;
    }
}

#define QWEN25_MOE_ENTRY(T, SUFFIX)                                                                \
    extern "C" __global__ void __launch_bounds__(QWEN25_ROW_THREADS)                               \
    moe_gather_##SUFFIX(const T* src, const i64* src_row, const float* scale, int has_scale,       \
                        T* dst, i64 rows, int n) {                                                 \
        moe_gather<T>(src, src_row, scale, has_scale, dst, rows, n);                               \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(QWEN25_ROW_THREADS)                               \
    moe_combine_##SUFFIX(const T* src, const i64* pos, const float* scale, int has_scale,          \
                         T* dst, i64 tokens, int K, int n) {                                       \
        moe_combine<T>(src, pos, scale, has_scale, dst, tokens, K, n);                             \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(QWEN25_ROW_THREADS)                               \
    moe_scale_grad_##SUFFIX(const T* dout, const T* src, const i64* pos, float* dscale,            \
                            i64 tokens, int K, int n) {                                            \
        moe_scale_grad<T>(dout, src, pos, dscale, tokens, K, n);                                   \
    }

QWEN25_MOE_ENTRY(float, f32)
QWEN25_MOE_ENTRY(bf16_t, bf16)
