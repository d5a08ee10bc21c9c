// Fused SwiGLU, as in Qwen2's MLP: out = silu(gate) * up, elementwise over contiguous tensors of
// n elements. Rounding follows the eager path (F.silu(gate) * up): silu is rounded to T, then
// the product.
// Launch: any 1-D grid (grid-stride loop) of blocks of at most QWEN25_ELEMENTWISE_THREADS.

__device__ __forceinline__ float sigmoid_f32(float g) { return 1.0f / (1.0f + expf(-g)); }

template <typename T>
__device__ void swiglu_fwd(const T* __restrict__ gate, const T* __restrict__ up, T* __restrict__ out,
                           i64 n) {
    QWEN25_GRID_LOOP(i, n) {
        const float g = to_float(gate[i]);
        const float s = round_to<T>(g * sigmoid_f32(g));
        out[i] = from_float<T>(s * to_float(up[i]));
    }
}

// Backward, with sg = sigmoid(gate) and s = cast<T>(gate * sg):
//   dup   = cast<T>(dout * s)
//   dgate = cast<T>(cast<T>(dout * up) * sg * (1 + gate * (1 - sg)))
template <typename T>
__device__ void swiglu_bwd(const T* __restrict__ dout, const T* __restrict__ gate,
                           const T* __restrict__ up, T* __restrict__ dgate, T* __restrict__ dup,
                           i64 n) {
    QWEN25_GRID_LOOP(i, n) {
        const float d = to_float(dout[i]);
        const float g = to_float(gate[i]);
        const float sg = sigmoid_f32(g);
        const float s = round_to<T>(g * sg);
        dup[i] = from_float<T>(d * s);
        const float ds = round_to<T>(d * to_float(up[i]));
        dgate[i] = from_float<T>(ds * sg * (1.0f + g * (1.0f - sg)));
    }
}

// Vectorised variants: the same arithmetic on 16-byte packs (8 bf16 or 4 fp32 per load), for
// tensors whose element count is a multiple of the pack and whose pointers are 16-byte aligned
// (the launcher checks both and otherwise uses the scalar kernels above). npacks = n / pack.
template <typename T>
__device__ void swiglu_fwd_vec(const uint4* __restrict__ gate, const uint4* __restrict__ up,
                               uint4* __restrict__ out, i64 npacks) {
    const int N = 16 / sizeof(T);
    QWEN25_GRID_LOOP(p, npacks) {
        const uint4 gv = gate[p];
        const uint4 uv = up[p];
        uint4 ov;
        const T* g = reinterpret_cast<const T*>(&gv);
        const T* u = reinterpret_cast<const T*>(&uv);
        T* o = reinterpret_cast<T*>(&ov);
#pragma unroll
        for (int j = 0; j < N; ++j) {
            const float gf = to_float(g[j]);
            const float s = round_to<T>(gf * sigmoid_f32(gf));
            o[j] = from_float<T>(s * to_float(u[j]));
        }
        out[p] = ov;
    }
}

template <typename T>
__device__ void swiglu_bwd_vec(const uint4* __restrict__ dout, const uint4* __restrict__ gate,
                               const uint4* __restrict__ up, uint4* __restrict__ dgate,
                               uint4* __restrict__ dup, i64 npacks) {
    const int N = 16 / sizeof(T);
    QWEN25_GRID_LOOP(p, npacks) {
        const uint4 dv = dout[p];
        const uint4 gv = gate[p];
        const uint4 uv = up[p];
        const T* dd = reinterpret_cast<const T*>(&dv);
        const T* g = reinterpret_cast<const T*>(&gv);
        const T* u = reinterpret_cast<const T*>(&uv);
        // Two half-packs of 8 bytes each: with all 8 bf16 lanes in flight at once ptxas (sm_90)
        // spilled at 64 registers; halves need about 50 (see the SASS table in benches/RESULTS.md).
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            uint2 dgh, duh;
            T* dg = reinterpret_cast<T*>(&dgh);
            T* du = reinterpret_cast<T*>(&duh);
#pragma unroll
            for (int jj = 0; jj < N / 2; ++jj) {
                const int j = h * (N / 2) + jj;
                const float d = to_float(dd[j]);
                const float gf = to_float(g[j]);
                const float sg = sigmoid_f32(gf);
                const float s = round_to<T>(gf * sg);
                du[jj] = from_float<T>(d * s);
                const float ds = round_to<T>(d * to_float(u[j]));
                dg[jj] = from_float<T>(ds * sg * (1.0f + gf * (1.0f - sg)));
            }
            reinterpret_cast<uint2*>(dgate + p)[h] = dgh;
            reinterpret_cast<uint2*>(dup + p)[h] = duh;
        }
    }
}

#define QWEN25_SWIGLU_ENTRY(T, SUFFIX)                                                             \
    extern "C" __global__ void __launch_bounds__(QWEN25_ELEMENTWISE_THREADS)                       \
    swiglu_fwd_##SUFFIX(const T* gate, const T* up, T* out, i64 n) {                               \
        swiglu_fwd<T>(gate, up, out, n);                                                           \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(QWEN25_ELEMENTWISE_THREADS)                       \
    swiglu_bwd_##SUFFIX(const T* dout, const T* gate, const T* up, T* dgate, T* dup, i64 n) {      \
        swiglu_bwd<T>(dout, gate, up, dgate, dup, n);                                              \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(QWEN25_ELEMENTWISE_THREADS)                       \
    swiglu_fwd_vec_##SUFFIX(const uint4* gate, const uint4* up, uint4* out, i64 npacks) {          \
        swiglu_fwd_vec<T>(gate, up, out, npacks);                                                  \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(QWEN25_ELEMENTWISE_THREADS)                       \
    swiglu_bwd_vec_##SUFFIX(const uint4* dout, const uint4* gate, const uint4* up, uint4* dgate,   \
                            uint4* dup, i64 npacks) {                                              \
        swiglu_bwd_vec<T>(dout, gate, up, dgate, dup, npacks);                                     \
    }

QWEN25_SWIGLU_ENTRY(float, f32)
QWEN25_SWIGLU_ENTRY(bf16_t, bf16)
