// Shared prelude of every qwen25 kernel family. The loader prepends this file to each .cu file
// (with #line directives, so compiler messages name the right file and line). It includes no CUDA
// header: NVRTC compiles the sources as they are, with no toolkit headers installed.
//
// bf16 is carried as its raw 16 bits (the upper half of an fp32); every kernel computes in fp32
// and rounds once per value that the eager PyTorch fallback also rounds, so that the GPU tests
// can compare against the fallback with tight tolerances.

typedef unsigned short bf16_t;
typedef long long i64;

// The most threads per block that the launchers (kernels/_cupy_ops.py) use: every entry point
// carries one of these in __launch_bounds__, so ptxas never assigns more registers than such a
// block can hold. The loader defines both from kernels/_loader.py (one number for both sides).
#if !defined(QWEN25_ROW_THREADS) || !defined(QWEN25_ELEMENTWISE_THREADS)
#error "compile through qwen25.kernels._loader, which defines QWEN25_ROW_THREADS and QWEN25_ELEMENTWISE_THREADS"
#endif

#define QWEN25_NEG_INF (__int_as_float(0xff800000))

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(bf16_t x) { return __uint_as_float(((unsigned int)x) << 16); }

template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16_t from_float<bf16_t>(float x) {
    unsigned int u = __float_as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        return (bf16_t)((u >> 16) | 0x0040u);  // NaN stays a (quiet) NaN
    }
    u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even (as torch does)
    return (bf16_t)(u >> 16);
}

// x rounded to T and back: the value the eager path would hold in a T tensor.
template <typename T> __device__ __forceinline__ float round_to(float x) { return to_float(from_float<T>(x)); }

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Sum of v over the block; every thread gets the result. blockDim.x must be a multiple of 32
// (at most 1024) and every thread of the block must call it. scratch: 32 floats of shared memory.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int nwarps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();  // a previous call may still be reading scratch
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < nwarps ? scratch[lane] : 0.0f;
    return warp_sum(v);  // each warp reduces the partials itself: no third barrier needed
}

// Online log-sum-exp. The state (m, s) stands for m + log(s); the empty state is (-inf, 0). A
// term whose max equals the merged max is taken as exp(0) = 1 exactly, never as exp(m - mx): with
// m = mx = +inf that would be exp(inf - inf) = NaN, where torch.logsumexp gives +inf. -inf
// entries add nothing; a NaN entry makes s NaN (m never becomes NaN), as torch propagates it.
__device__ __forceinline__ void lse_push(float& m, float& s, float v) {
    if (v > m) {
        s = s * expf(m - v) + 1.0f;  // m = -inf: s is 0 and expf(-inf) = 0
        m = v;
    } else if (v == m) {
        if (m != QWEN25_NEG_INF) s += 1.0f;
    } else {
        s += expf(v - m);  // v < m, or v is NaN
    }
}

// Merge the state (m2, s2) into (m, s).
__device__ __forceinline__ void lse_merge(float& m, float& s, float m2, float s2) {
    const float mx = fmaxf(m, m2);
    if (mx == QWEN25_NEG_INF) return;  // both empty
    s = (m == mx ? s : s * expf(m - mx)) + (m2 == mx ? s2 : s2 * expf(m2 - mx));
    m = mx;
}

__device__ __forceinline__ void warp_lse(float& m, float& s) {
    for (int o = 16; o > 0; o >>= 1) {
        const float m2 = __shfl_xor_sync(0xffffffffu, m, o);
        const float s2 = __shfl_xor_sync(0xffffffffu, s, o);
        lse_merge(m, s, m2, s2);
    }
}

// Block-wide log-sum-exp merge; every thread gets the merged (m, s). Same rules as block_sum.
__device__ __forceinline__ void block_lse(float& m, float& s, float* scratch_m, float* scratch_s) {
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int nwarps = blockDim.x >> 5;
    warp_lse(m, s);
    __syncthreads();
    if (lane == 0) {
        scratch_m[warp] = m;
        scratch_s[warp] = s;
    }
    __syncthreads();
    m = lane < nwarps ? scratch_m[lane] : QWEN25_NEG_INF;
    s = lane < nwarps ? scratch_s[lane] : 0.0f;
    warp_lse(m, s);
}

// Grid-stride loop over [0, n) with 64-bit indices.
#define QWEN25_GRID_LOOP(i, n) \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)
