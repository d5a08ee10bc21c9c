// Fused SwiGLU, as in Qwen2's MLP: out = silu(gate) * up, elementwise over contiguous tensors of
// n elements. Rounding follows the eager path (F.silu(gate) * up): silu is rounded to T, then
// the product.
// Launch: any 1-D grid (grid-stride loop).

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

#define QWEN25_SWIGLU_ENTRY(T, SUFFIX)                                                               \
    extern "C" __global__ void swiglu_fwd_##SUFFIX(const T* gate, const T* up, T* out, i64 n) {    \
        swiglu_fwd<T>(gate, up, out, n);                                                           \
    }                                                                                              \
    extern "C" __global__ void swiglu_bwd_##SUFFIX(const T* dout, const T* gate, const T* up,      \
                                                  T* dgate, T* dup, i64 n) {                      \
        swiglu_bwd<T>(dout, gate, up, dgate, dup, n);                                              \
    }

QWEN25_SWIGLU_ENTRY(float, f32)
QWEN25_SWIGLU_ENTRY(bf16_t, bf16)
