// RMSNorm over the last dimension, with Qwen2's semantics (transformers' Qwen2RMSNorm):
//   h = cast<T>(x * rsqrt(mean(x^2) + eps))   in fp32, then cast back to the input dtype
//   y = cast<T>(w * h)
// x, dy, y, dx: [rows, n] contiguous; w: [n]; rstd: [rows] fp32, saved by the forward.
// Launch: one block per row (grid-stride over rows), blockDim a multiple of 32, at most
// QWEN25_ROW_THREADS.

template <typename T>
__device__ void rmsnorm_fwd(const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ y,
                            float* __restrict__ rstd, i64 rows, int n, float eps) {
    __shared__ float scratch[32];
    for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
        const T* xr = x + row * n;
        T* yr = y + row * n;
        float ss = 0.0f;
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            const float v = to_float(xr[i]);
            ss += v * v;
        }
        ss = block_sum(ss, scratch);
        const float r = rsqrtf(ss / (float)n + eps);
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            const float h = round_to<T>(to_float(xr[i]) * r);
            yr[i] = from_float<T>(to_float(w[i]) * h);
        }
        if (threadIdx.x == 0) rstd[row] = r;
    }
}

// Backward. With r = rstd[row], xh = x * r (fp32) and g = cast<T>(dy * w):
//   dx = r * (g - xh * mean(g * xh))
//   dw_partial[blockIdx.x, i] = sum over this block's rows of cast<T>(dy * cast<T>(xh))
// Each thread owns the columns i = threadIdx.x (mod blockDim.x) of its block's dw_partial row,
// so no atomics are needed; the caller sums dw_partial over its gridDim.x rows.
template <typename T>
__device__ void rmsnorm_bwd(const T* __restrict__ dy, const T* __restrict__ x, const T* __restrict__ w,
                            const float* __restrict__ rstd, T* __restrict__ dx,
                            float* __restrict__ dw_partial, i64 rows, int n) {
    __shared__ float scratch[32];
    float* dwp = dw_partial + (i64)blockIdx.x * n;
    for (int i = threadIdx.x; i < n; i += blockDim.x) dwp[i] = 0.0f;
    for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
        const T* xr = x + row * n;
        const T* dyr = dy + row * n;
        T* dxr = dx + row * n;
        const float r = rstd[row];
        float dot = 0.0f;
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            const float xh = to_float(xr[i]) * r;
            const float d = to_float(dyr[i]);
            const float g = round_to<T>(d * to_float(w[i]));
            dot += g * xh;
            dwp[i] += round_to<T>(d * round_to<T>(xh));
        }
        dot = block_sum(dot, scratch) / (float)n;
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            const float xh = to_float(xr[i]) * r;
            const float g = round_to<T>(to_float(dyr[i]) * to_float(w[i]));
            dxr[i] = from_float<T>(r * (g - xh * dot));
        }
    }
}

// Vectorised variants: the same arithmetic on 16-byte packs (8 bf16 or 4 fp32) when n is a
// multiple of the pack and x, w, y (dy, dx) are 16-byte aligned (the launcher checks). npk = n /
// pack; each thread owns whole packs, i.e. the columns p*N .. p*N + N - 1 of its packs p.
template <typename T>
__device__ void rmsnorm_fwd_vec(const uint4* __restrict__ x, const uint4* __restrict__ w,
                                uint4* __restrict__ y, float* __restrict__ rstd, i64 rows, int npk,
                                int n, float eps) {
    const int N = 16 / sizeof(T);
    __shared__ float scratch[32];
    for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
        const uint4* xr = x + row * npk;
        uint4* yr = y + row * npk;
        float ss = 0.0f;
        for (int p = threadIdx.x; p < npk; p += blockDim.x) {
            const uint4 xv = xr[p];
            const T* xs = reinterpret_cast<const T*>(&xv);
#pragma unroll
            for (int j = 0; j < N; ++j) {
                const float v = to_float(xs[j]);
                ss += v * v;
            }
        }
        ss = block_sum(ss, scratch);
        const float r = rsqrtf(ss / (float)n + eps);
        for (int p = threadIdx.x; p < npk; p += blockDim.x) {
            const uint4 xv = xr[p];
            const uint4 wv = w[p];
            uint4 yv;
            const T* xs = reinterpret_cast<const T*>(&xv);
            const T* ws = reinterpret_cast<const T*>(&wv);
            T* ys = reinterpret_cast<T*>(&yv);
#pragma unroll
            for (int j = 0; j < N; ++j) {
                const float h = round_to<T>(to_float(xs[j]) * r);
                ys[j] = from_float<T>(to_float(ws[j]) * h);
            }
            yr[p] = yv;
        }
        if (threadIdx.x == 0) rstd[row] = r;
    }
}

template <typename T>
__device__ void rmsnorm_bwd_vec(const uint4* __restrict__ dy, const uint4* __restrict__ x,
                                const uint4* __restrict__ w, const float* __restrict__ rstd,
                                uint4* __restrict__ dx, float* __restrict__ dw_partial, i64 rows,
                                int npk, int n) {
    const int N = 16 / sizeof(T);
    __shared__ float scratch[32];
    float* dwp = dw_partial + (i64)blockIdx.x * n;
    for (int p = threadIdx.x; p < npk; p += blockDim.x) {
#pragma unroll
        for (int j = 0; j < N; ++j) dwp[p * N + j] = 0.0f;
    }
    for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
        const uint4* xr = x + row * npk;
        const uint4* dyr = dy + row * npk;
        uint4* dxr = dx + row * npk;
        const float r = rstd[row];
        float dot = 0.0f;
        for (int p = threadIdx.x; p < npk; p += blockDim.x) {
            const uint4 xv = xr[p];
            const uint4 dv = dyr[p];
            const uint4 wv = w[p];
            const T* xs = reinterpret_cast<const T*>(&xv);
            const T* ds = reinterpret_cast<const T*>(&dv);
            const T* ws = reinterpret_cast<const T*>(&wv);
#pragma unroll
            for (int j = 0; j < N; ++j) {
                const float xh = to_float(xs[j]) * r;
                const float d = to_float(ds[j]);
                const float g = round_to<T>(d * to_float(ws[j]));
                dot += g * xh;
                dwp[p * N + j] += round_to<T>(d * round_to<T>(xh));
            }
        }
        dot = block_sum(dot, scratch) / (float)n;
        for (int p = threadIdx.x; p < npk; p += blockDim.x) {
            const uint4 xv = xr[p];
            const uint4 dv = dyr[p];
            const uint4 wv = w[p];
            uint4 ov;
            const T* xs = reinterpret_cast<const T*>(&xv);
            const T* ds = reinterpret_cast<const T*>(&dv);
            const T* ws = reinterpret_cast<const T*>(&wv);
            T* os = reinterpret_cast<T*>(&ov);
#pragma unroll
            for (int j = 0; j < N; ++j) {
                const float xh = to_float(xs[j]) * r;
                const float g = round_to<T>(to_float(ds[j]) * to_float(ws[j]));
                os[j] = from_float<T>(r * (g - xh * dot));
            }
            dxr[p] = ov;
        }
    }
}

#define QWEN25_RMSNORM_ENTRY(T, SUFFIX)                                                            \
    extern "C" __global__ void __launch_bounds__(QWEN25_ROW_THREADS)                               \
    rmsnorm_fwd_##SUFFIX(const T* x, const T* w, T* y, float* rstd, i64 rows, int n, float eps) {  \
        rmsnorm_fwd<T>(x, w, y, rstd, rows, n, eps);                                               \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(QWEN25_ROW_THREADS)                               \
    rmsnorm_bwd_##SUFFIX(const T* dy, const T* x, const T* w, const float* rstd, T* dx,            \
                         float* dw_partial, i64 rows, int n) {                                     \
        rmsnorm_bwd<T>(dy, x, w, rstd, dx, dw_partial, rows, n);                                   \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(QWEN25_ROW_THREADS)                               \
    rmsnorm_fwd_vec_##SUFFIX(const uint4* x, const uint4* w, uint4* y, float* rstd, i64 rows,      \
                             int npk, int n, float eps) {                                          \
        rmsnorm_fwd_vec<T>(x, w, y, rstd, rows, npk, n, eps);                                      \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(QWEN25_ROW_THREADS)                               \
    rmsnorm_bwd_vec_##SUFFIX(const uint4* dy, const uint4* x, const uint4* w, const float* rstd,   \
                             uint4* dx, float* dw_partial, i64 rows, int npk, int n) {             \
        rmsnorm_bwd_vec<T>(dy, x, w, rstd, dx, dw_partial, rows, npk, n);                          \
    }

QWEN25_RMSNORM_ENTRY(float, f32)
QWEN25_RMSNORM_ENTRY(bf16_t, bf16)
