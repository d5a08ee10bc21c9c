// Cross-entropy rows for the fused (chunked) cross-entropy: the caller computes one chunk of
// logits [rows, V] (in T, contiguous) with a matmul, and this kernel, one block per row, computes
// in fp32 with an online max/sum (one read of the row, no fp32 copy of it):
//   lse[r]  = logsumexp(logits[r, :])
//   loss[r] = lse[r] - logits[r, labels[r]]          (0 where labels[r] == ignore_index)
// and, when write_grad != 0, overwrites the row in place with d loss[r] / d logits[r, :]:
//   softmax(logits[r]) - onehot(labels[r])           (a zero row where ignored)
// Labels are checked to lie in [0, V) (or equal ignore_index) by the caller.
// A +inf logit gives lse = +inf (and loss +inf, or NaN when the label's logit is +inf), as
// torch.logsumexp and F.cross_entropy do.
// Launch: one block per row (grid-stride), blockDim a multiple of 32, at most QWEN25_ROW_THREADS.

template <typename T>
__device__ void ce_rows(T* __restrict__ logits, const i64* __restrict__ labels,
                        float* __restrict__ loss, float* __restrict__ lse, i64 rows, i64 V,
                        i64 ignore_index, int write_grad) {
    __shared__ float scratch_m[32];
    __shared__ float scratch_s[32];
    for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
        T* row = logits + r * V;
        const i64 label = labels[r];
        const bool ignored = label == ignore_index;
        float m = QWEN25_NEG_INF, s = 0.0f;
        for (i64 j = threadIdx.x; j < V; j += blockDim.x) lse_push(m, s, to_float(row[j]));
        block_lse(m, s, scratch_m, scratch_s);
        const float l = m + logf(s);
        if (threadIdx.x == 0) {
            lse[r] = l;
            loss[r] = ignored ? 0.0f : l - to_float(row[label]);
        }
        if (write_grad) {
            __syncthreads();  // thread 0 has read row[label] before the row is overwritten
            for (i64 j = threadIdx.x; j < V; j += blockDim.x) {
                float g = 0.0f;
                if (!ignored) g = expf(to_float(row[j]) - l) - (j == label ? 1.0f : 0.0f);
                row[j] = from_float<T>(g);
            }
        }
        __syncthreads();  // the next row's block_lse reuses the scratch
    }
}

#define QWEN25_CE_ENTRY(T, SUFFIX)                                                                 \
    extern "C" __global__ void __launch_bounds__(QWEN25_ROW_THREADS)                               \
    ce_rows_##SUFFIX(T* logits, const i64* labels, float* loss, float* lse, i64 rows, i64 V,       \
                     i64 ignore_index, int write_grad) {                                           \
        ce_rows<T>(logits, labels, loss, lse, rows, V, ignore_index, write_grad);                  \
    }

QWEN25_CE_ENTRY(float, f32)
QWEN25_CE_ENTRY(bf16_t, bf16)
