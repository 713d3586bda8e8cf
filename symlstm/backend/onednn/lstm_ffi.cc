// One LSTM layer over all time steps as oneDNN's fused primitive (`vanilla_lstm`, the one PyTorch's
// nn.LSTM runs on CPU), forward and backward, and a matrix product as oneDNN's matmul primitive (the
// one PyTorch's Linear runs under autocast), called from XLA as FFI custom calls. Built by
// `make onednn` (symlstm/backend/onednn/__init__.py: `build`), loaded by the same module.
//
// Layouts are the model's own, row-major, so nothing is transposed on the way in:
//   x (T, B, E) = oneDNN tnc;  W (E, 4H) and U (H, 4H) = ldigo with l = d = 1 (gate blocks i, f, g, o,
//   oneDNN's order);  b (4H) = ldgo;  h0, c0 (B, H) = ldnc.
// Precision (the `bf16` attribute): bf16 x, W, U, h0, hs, hT with float32 c0, cT and b, as oneDNN's
// bf16 LSTM takes them; every gradient is float32 (oneDNN's bf16 backward accepts no other).
// The weights are reordered into the primitive's blocked layout at every call, as PyTorch does.
//
// Threads: oneDNN here is built on GNU OpenMP; it runs its parallel regions with `threads` threads
// (the attribute, chosen on the Python side) on the XLA thread that calls it.
// Scratchpad: user-managed (a library-managed one is sized on the thread that made the primitive
// and crashed when called from XLA's threads).
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include <omp.h>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using dt = memory::data_type;
using tag = memory::format_tag;

namespace {

using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, bool>;  // T, B, E, H, bf16

dnnl::engine &cpu() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

struct Descs {  // the memory descriptors of one shape, in the user's layouts
  memory::desc x, h, c, w_layer, w_iter, bias, hs, d_x, d_h, d_hs, d_w_layer, d_w_iter, d_c;
  Descs(const Key &k) {
    auto [T, B, E, H, bf16] = k;
    dt low = bf16 ? dt::bf16 : dt::f32;
    x = memory::desc({T, B, E}, low, tag::tnc);
    h = memory::desc({1, 1, B, H}, low, tag::ldnc);
    c = memory::desc({1, 1, B, H}, dt::f32, tag::ldnc);
    w_layer = memory::desc({1, 1, E, 4, H}, low, tag::ldigo);
    w_iter = memory::desc({1, 1, H, 4, H}, low, tag::ldigo);
    bias = memory::desc({1, 1, 4, H}, dt::f32, tag::ldgo);
    hs = memory::desc({T, B, H}, low, tag::tnc);
    d_x = memory::desc({T, B, E}, dt::f32, tag::tnc);
    d_h = memory::desc({1, 1, B, H}, dt::f32, tag::ldnc);
    d_c = c;
    d_hs = memory::desc({T, B, H}, dt::f32, tag::tnc);
    d_w_layer = memory::desc({1, 1, E, 4, H}, dt::f32, tag::ldigo);
    d_w_iter = memory::desc({1, 1, H, 4, H}, dt::f32, tag::ldigo);
  }
};

struct Layer {  // the primitives of one shape, made once
  Descs d;
  dnnl::lstm_forward::primitive_desc fwd_pd;
  dnnl::lstm_backward::primitive_desc bwd_pd;
  dnnl::lstm_forward fwd;
  dnnl::lstm_backward bwd;
  explicit Layer(const Key &k) : d(k) {
    auto [T, B, E, H, bf16] = k;
    dt low = bf16 ? dt::bf16 : dt::f32;
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    auto any_layer = memory::desc({1, 1, E, 4, H}, low, tag::any);
    auto any_iter = memory::desc({1, 1, H, 4, H}, low, tag::any);
    auto dir = dnnl::rnn_direction::unidirectional_left2right;
    fwd_pd = dnnl::lstm_forward::primitive_desc(cpu(), dnnl::prop_kind::forward_training, dir, d.x, d.h, d.c,
                                                 any_layer, any_iter, d.bias, d.hs, d.h, d.c, attr);
    auto d_any_layer = memory::desc({1, 1, E, 4, H}, dt::f32, tag::any);
    auto d_any_iter = memory::desc({1, 1, H, 4, H}, dt::f32, tag::any);
    bwd_pd = dnnl::lstm_backward::primitive_desc(
        cpu(), dnnl::prop_kind::backward, dir, d.x, d.h, d.c, any_layer, any_iter, d.bias, d.hs, d.h, d.c,
        d.d_x, d.d_h, d.d_c, d_any_layer, d_any_iter, d.bias, d.d_hs, d.d_h, d.d_c, fwd_pd, attr);
    fwd = dnnl::lstm_forward(fwd_pd);
    bwd = dnnl::lstm_backward(bwd_pd);
  }
};

Layer &layer(const Key &k) {
  static std::mutex lock;
  static std::map<Key, Layer *> made;  // never freed: a few shapes per process
  std::lock_guard<std::mutex> guard(lock);
  auto it = made.find(k);
  if (it == made.end()) it = made.emplace(k, new Layer(k)).first;
  return *it->second;
}

// `from` (the user's layout, at `data`) in the layout `to`, into a buffer this call owns.
memory reordered(const memory::desc &from, void *data, const memory::desc &to, dnnl::stream &s,
                 std::vector<uint8_t> &keep) {
  memory user(from, cpu(), data);
  if (from == to) return user;
  keep.resize(to.get_size());
  memory out(to, cpu(), keep.data());
  dnnl::reorder(user, out).execute(s, user, out);
  return out;
}

memory scratch(const memory::desc &md, std::vector<uint8_t> &keep) {
  keep.resize(md.get_size());
  return memory(md, cpu(), keep.data());
}

Key key_of(const ffi::AnyBuffer &x, int64_t hidden, bool bf16) {
  auto dims = x.dimensions();
  return Key(dims[0], dims[1], dims[2], hidden, bf16);
}

ffi::Error forward(ffi::AnyBuffer x, ffi::AnyBuffer w, ffi::AnyBuffer u, ffi::AnyBuffer b, ffi::AnyBuffer h0,
                   ffi::AnyBuffer c0, ffi::Result<ffi::AnyBuffer> hs, ffi::Result<ffi::AnyBuffer> hT,
                   ffi::Result<ffi::AnyBuffer> cT, ffi::Result<ffi::AnyBuffer> workspace, bool bf16, int64_t threads) {
  int64_t H = h0.dimensions()[1];
  try {
    Layer &L = layer(key_of(x, H, bf16));
    omp_set_num_threads(static_cast<int>(threads));
    dnnl::stream s(cpu());
    std::vector<uint8_t> wl, wi, pad;
    auto w_layer = reordered(L.d.w_layer, w.untyped_data(), L.fwd_pd.weights_layer_desc(), s, wl);
    auto w_iter = reordered(L.d.w_iter, u.untyped_data(), L.fwd_pd.weights_iter_desc(), s, wi);
    L.fwd.execute(s, {{DNNL_ARG_SRC_LAYER, memory(L.d.x, cpu(), x.untyped_data())},
                      {DNNL_ARG_SRC_ITER, memory(L.d.h, cpu(), h0.untyped_data())},
                      {DNNL_ARG_SRC_ITER_C, memory(L.d.c, cpu(), c0.untyped_data())},
                      {DNNL_ARG_WEIGHTS_LAYER, w_layer},
                      {DNNL_ARG_WEIGHTS_ITER, w_iter},
                      {DNNL_ARG_BIAS, memory(L.d.bias, cpu(), b.untyped_data())},
                      {DNNL_ARG_DST_LAYER, memory(L.d.hs, cpu(), hs->untyped_data())},
                      {DNNL_ARG_DST_ITER, memory(L.d.h, cpu(), hT->untyped_data())},
                      {DNNL_ARG_DST_ITER_C, memory(L.d.c, cpu(), cT->untyped_data())},
                      {DNNL_ARG_WORKSPACE, memory(L.fwd_pd.workspace_desc(), cpu(), workspace->untyped_data())},
                      {DNNL_ARG_SCRATCHPAD, scratch(L.fwd_pd.scratchpad_desc(), pad)}});
    s.wait();
  } catch (const dnnl::error &e) {
    return ffi::Error(ffi::ErrorCode::kInternal, std::string("oneDNN LSTM forward: ") + e.what());
  }
  return ffi::Error::Success();
}

ffi::Error backward(ffi::AnyBuffer x, ffi::AnyBuffer w, ffi::AnyBuffer u, ffi::AnyBuffer b, ffi::AnyBuffer h0,
                    ffi::AnyBuffer c0, ffi::AnyBuffer hs, ffi::AnyBuffer hT, ffi::AnyBuffer cT,
                    ffi::AnyBuffer workspace, ffi::AnyBuffer d_hs, ffi::AnyBuffer d_hT, ffi::AnyBuffer d_cT,
                    ffi::Result<ffi::AnyBuffer> d_x, ffi::Result<ffi::AnyBuffer> d_w, ffi::Result<ffi::AnyBuffer> d_u,
                    ffi::Result<ffi::AnyBuffer> d_b, ffi::Result<ffi::AnyBuffer> d_h0,
                    ffi::Result<ffi::AnyBuffer> d_c0, bool bf16, int64_t threads) {
  int64_t H = h0.dimensions()[1];
  try {
    Layer &L = layer(key_of(x, H, bf16));
    omp_set_num_threads(static_cast<int>(threads));
    dnnl::stream s(cpu());
    std::vector<uint8_t> wl, wi, dwl, dwi, pad;
    auto w_layer = reordered(L.d.w_layer, w.untyped_data(), L.bwd_pd.weights_layer_desc(), s, wl);
    auto w_iter = reordered(L.d.w_iter, u.untyped_data(), L.bwd_pd.weights_iter_desc(), s, wi);
    // oneDNN adds the weights' gradients into these: start them at zero
    memory user_dwl(L.d.d_w_layer, cpu(), d_w->untyped_data()), user_dwi(L.d.d_w_iter, cpu(), d_u->untyped_data());
    memory d_layer = L.bwd_pd.diff_weights_layer_desc() == L.d.d_w_layer
                         ? user_dwl : scratch(L.bwd_pd.diff_weights_layer_desc(), dwl);
    memory d_iter = L.bwd_pd.diff_weights_iter_desc() == L.d.d_w_iter
                        ? user_dwi : scratch(L.bwd_pd.diff_weights_iter_desc(), dwi);
    std::memset(d_layer.get_data_handle(), 0, d_layer.get_desc().get_size());
    std::memset(d_iter.get_data_handle(), 0, d_iter.get_desc().get_size());
    std::memset(d_b->untyped_data(), 0, d_b->size_bytes());
    L.bwd.execute(s, {{DNNL_ARG_SRC_LAYER, memory(L.d.x, cpu(), x.untyped_data())},
                      {DNNL_ARG_SRC_ITER, memory(L.d.h, cpu(), h0.untyped_data())},
                      {DNNL_ARG_SRC_ITER_C, memory(L.d.c, cpu(), c0.untyped_data())},
                      {DNNL_ARG_WEIGHTS_LAYER, w_layer},
                      {DNNL_ARG_WEIGHTS_ITER, w_iter},
                      {DNNL_ARG_BIAS, memory(L.d.bias, cpu(), b.untyped_data())},
                      {DNNL_ARG_DST_LAYER, memory(L.d.hs, cpu(), hs.untyped_data())},
                      {DNNL_ARG_DST_ITER, memory(L.d.h, cpu(), hT.untyped_data())},
                      {DNNL_ARG_DST_ITER_C, memory(L.d.c, cpu(), cT.untyped_data())},
                      {DNNL_ARG_WORKSPACE, memory(L.fwd_pd.workspace_desc(), cpu(), workspace.untyped_data())},
                      {DNNL_ARG_DIFF_DST_LAYER, memory(L.d.d_hs, cpu(), d_hs.untyped_data())},
                      {DNNL_ARG_DIFF_DST_ITER, memory(L.d.d_h, cpu(), d_hT.untyped_data())},
                      {DNNL_ARG_DIFF_DST_ITER_C, memory(L.d.d_c, cpu(), d_cT.untyped_data())},
                      {DNNL_ARG_DIFF_SRC_LAYER, memory(L.d.d_x, cpu(), d_x->untyped_data())},
                      {DNNL_ARG_DIFF_SRC_ITER, memory(L.d.d_h, cpu(), d_h0->untyped_data())},
                      {DNNL_ARG_DIFF_SRC_ITER_C, memory(L.d.d_c, cpu(), d_c0->untyped_data())},
                      {DNNL_ARG_DIFF_WEIGHTS_LAYER, d_layer},
                      {DNNL_ARG_DIFF_WEIGHTS_ITER, d_iter},
                      {DNNL_ARG_DIFF_BIAS, memory(L.d.bias, cpu(), d_b->untyped_data())},
                      {DNNL_ARG_SCRATCHPAD, scratch(L.bwd_pd.scratchpad_desc(), pad)}});
    if (d_layer != user_dwl) dnnl::reorder(d_layer, user_dwl).execute(s, d_layer, user_dwl);
    if (d_iter != user_dwi) dnnl::reorder(d_iter, user_dwi).execute(s, d_iter, user_dwi);
    s.wait();
  } catch (const dnnl::error &e) {
    return ffi::Error(ffi::ErrorCode::kInternal, std::string("oneDNN LSTM backward: ") + e.what());
  }
  return ffi::Error::Success();
}

// -- matrix products ------------------------------------------------------------------------------
// c (M, N) float32 = op(a) · op(b), op transposing a factor where its flag says so (then a is (K, M),
// b (N, K), read in place: oneDNN's matmul takes either layout); a and b both bf16 (float32 sums) or
// both float32: PyTorch's `Linear` under autocast runs this primitive (brg_matmul).
using MatKey = std::tuple<int64_t, int64_t, int64_t, bool, bool, bool>;  // M, K, N, ta, tb, bf16

struct Matmul {
  memory::desc a, b, c;
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul prim;
  explicit Matmul(const MatKey &k) {
    auto [M, K, N, ta, tb, bf16] = k;
    dt low = bf16 ? dt::bf16 : dt::f32;
    a = memory::desc({M, K}, low, ta ? tag::ba : tag::ab);
    b = memory::desc({K, N}, low, tb ? tag::ba : tag::ab);
    c = memory::desc({M, N}, dt::f32, tag::ab);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    pd = dnnl::matmul::primitive_desc(cpu(), a, b, c, attr);
    prim = dnnl::matmul(pd);
  }
};

Matmul &matmul_of(const MatKey &k) {
  static std::mutex lock;
  static std::map<MatKey, Matmul *> made;
  std::lock_guard<std::mutex> guard(lock);
  auto it = made.find(k);
  if (it == made.end()) it = made.emplace(k, new Matmul(k)).first;
  return *it->second;
}

ffi::Error matmul(ffi::AnyBuffer a, ffi::AnyBuffer b, ffi::Result<ffi::AnyBuffer> c, bool transpose_a,
                  bool transpose_b, bool bf16, int64_t threads) {
  auto da = a.dimensions(), dc = c->dimensions();
  int64_t M = dc[0], N = dc[1], K = transpose_a ? da[0] : da[1];
  try {
    Matmul &P = matmul_of(MatKey(M, K, N, transpose_a, transpose_b, bf16));
    omp_set_num_threads(static_cast<int>(threads));
    dnnl::stream s(cpu());
    std::vector<uint8_t> pad;
    P.prim.execute(s, {{DNNL_ARG_SRC, memory(P.a, cpu(), a.untyped_data())},
                       {DNNL_ARG_WEIGHTS, memory(P.b, cpu(), b.untyped_data())},
                       {DNNL_ARG_DST, memory(P.c, cpu(), c->untyped_data())},
                       {DNNL_ARG_SCRATCHPAD, scratch(P.pd.scratchpad_desc(), pad)}});
    s.wait();
  } catch (const dnnl::error &e) {
    return ffi::Error(ffi::ErrorCode::kInternal, std::string("oneDNN matmul: ") + e.what());
  }
  return ffi::Error::Success();
}

}  // namespace

extern "C" {

// The oneDNN this library runs, as "3.2.0 (commit 4011219)": `make bench` names it.
const char *symlstm_onednn_version() {
  static char text[64];
  const dnnl_version_t *v = dnnl_version();
  std::snprintf(text, sizeof text, "%d.%d.%d (commit %.7s)", v->major, v->minor, v->patch, v->hash);
  return text;
}

// The instruction set oneDNN dispatches to on this CPU, as its enum names it ("avx512_core_bf16",
// "avx2" …): the CPU's own, or lower where ONEDNN_MAX_CPU_ISA caps it.
const char *symlstm_onednn_isa() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx2_vnni_2: return "avx2_vnni_2";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_fp16: return "avx512_core_fp16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    case dnnl::cpu_isa::avx512_core_amx_fp16: return "avx512_core_amx_fp16";
    default: return "default";
  }
}

// 1 if oneDNN makes a matmul of this precision here, in every layout the model asks of it (either
// factor transposed), else 0: its bf16 kernels exist only for some instruction sets.
int symlstm_matmul_supported(int bf16) {
  try {
    for (bool ta : {false, true})
      for (bool tb : {false, true}) matmul_of(MatKey(8, 16, 8, ta, tb, bf16 != 0));
    return 1;
  } catch (const dnnl::error &) {
    return 0;
  }
}

// The workspace's size in bytes for a shape (the forward's fourth output); 0 if oneDNN refuses it.
size_t symlstm_lstm_workspace(int64_t T, int64_t B, int64_t E, int64_t H, int bf16) {
  try {
    return layer(Key(T, B, E, H, bf16 != 0)).fwd_pd.workspace_desc().get_size();
  } catch (const dnnl::error &) {
    return 0;
  }
}

}  // extern "C"

XLA_FFI_DEFINE_HANDLER_SYMBOL(SymlstmLstmForward, forward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()  // x
                                  .Arg<ffi::AnyBuffer>()  // W
                                  .Arg<ffi::AnyBuffer>()  // U
                                  .Arg<ffi::AnyBuffer>()  // b
                                  .Arg<ffi::AnyBuffer>()  // h0
                                  .Arg<ffi::AnyBuffer>()  // c0
                                  .Ret<ffi::AnyBuffer>()  // hs
                                  .Ret<ffi::AnyBuffer>()  // hT
                                  .Ret<ffi::AnyBuffer>()  // cT
                                  .Ret<ffi::AnyBuffer>()  // workspace
                                  .Attr<bool>("bf16")
                                  .Attr<int64_t>("threads"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(SymlstmLstmBackward, backward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()  // x
                                  .Arg<ffi::AnyBuffer>()  // W
                                  .Arg<ffi::AnyBuffer>()  // U
                                  .Arg<ffi::AnyBuffer>()  // b
                                  .Arg<ffi::AnyBuffer>()  // h0
                                  .Arg<ffi::AnyBuffer>()  // c0
                                  .Arg<ffi::AnyBuffer>()  // hs
                                  .Arg<ffi::AnyBuffer>()  // hT
                                  .Arg<ffi::AnyBuffer>()  // cT
                                  .Arg<ffi::AnyBuffer>()  // workspace
                                  .Arg<ffi::AnyBuffer>()  // d hs
                                  .Arg<ffi::AnyBuffer>()  // d hT
                                  .Arg<ffi::AnyBuffer>()  // d cT
                                  .Ret<ffi::AnyBuffer>()  // d x
                                  .Ret<ffi::AnyBuffer>()  // d W
                                  .Ret<ffi::AnyBuffer>()  // d U
                                  .Ret<ffi::AnyBuffer>()  // d b
                                  .Ret<ffi::AnyBuffer>()  // d h0
                                  .Ret<ffi::AnyBuffer>()  // d c0
                                  .Attr<bool>("bf16")
                                  .Attr<int64_t>("threads"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(SymlstmMatmul, matmul,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()  // a
                                  .Arg<ffi::AnyBuffer>()  // b
                                  .Ret<ffi::AnyBuffer>()  // c
                                  .Attr<bool>("transpose_a")
                                  .Attr<bool>("transpose_b")
                                  .Attr<bool>("bf16")
                                  .Attr<int64_t>("threads"));
