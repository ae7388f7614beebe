// Tensor ops: arithmetic, comparisons, reductions, shape and indexing, in-place updates.
// Each entry is one call into libtorch; argument checking happens in TS.
#include "handles.h"

namespace bx {

using CI = const Napi::CallbackInfo&;

static Napi::Value pair(Napi::Env env, const std::tuple<torch::Tensor, torch::Tensor>& p) {
  auto arr = Napi::Array::New(env, 2);
  arr.Set(0u, wrap(env, std::get<0>(p)));
  arr.Set(1u, wrap(env, std::get<1>(p)));
  return arr;
}

static Napi::Value list(Napi::Env env, const std::vector<torch::Tensor>& ts) {
  auto arr = Napi::Array::New(env, ts.size());
  for (size_t i = 0; i < ts.size(); i++) arr.Set(static_cast<uint32_t>(i), wrap(env, ts[i]));
  return arr;
}

// Binary ops whose second operand is a tensor handle or a JS number.
#define BINARY(NAME, FN)                                                          \
  def(env, exports, NAME, [](CI info) -> Napi::Value {                            \
    auto& a = T(info, 0);                                                         \
    if (isTensor(info[1])) return wrap(info.Env(), FN(a, T(info, 1)));            \
    return wrap(info.Env(), FN(a, scalar(info[1])));                              \
  })
#define UNARY(NAME, EXPR) \
  def(env, exports, NAME, [](CI info) -> Napi::Value { auto& a = T(info, 0); return wrap(info.Env(), EXPR); })
#define INPLACE_BINARY(NAME, METHOD)                           \
  def(env, exports, NAME, [](CI info) -> Napi::Value {         \
    auto& a = T(info, 0);                                      \
    if (isTensor(info[1])) a.METHOD(T(info, 1));               \
    else a.METHOD(scalar(info[1]));                            \
    return info.Env().Undefined();                             \
  })

static torch::Tensor addOp(const torch::Tensor& a, const torch::Tensor& b) { return torch::add(a, b); }
static torch::Tensor addOp(const torch::Tensor& a, const torch::Scalar& b) { return torch::add(a, b); }
static torch::Tensor subOp(const torch::Tensor& a, const torch::Tensor& b) { return torch::sub(a, b); }
static torch::Tensor subOp(const torch::Tensor& a, const torch::Scalar& b) { return torch::sub(a, b); }
static torch::Tensor rsubOp(const torch::Tensor& a, const torch::Tensor& b) { return torch::rsub(a, b); }
static torch::Tensor rsubOp(const torch::Tensor& a, const torch::Scalar& b) { return torch::rsub(a, b); }
static torch::Tensor mulOp(const torch::Tensor& a, const torch::Tensor& b) { return torch::mul(a, b); }
static torch::Tensor mulOp(const torch::Tensor& a, const torch::Scalar& b) { return torch::mul(a, b); }
static torch::Tensor divOp(const torch::Tensor& a, const torch::Tensor& b) { return torch::div(a, b); }
static torch::Tensor divOp(const torch::Tensor& a, const torch::Scalar& b) { return torch::div(a, b); }
static torch::Tensor powOp(const torch::Tensor& a, const torch::Tensor& b) { return torch::pow(a, b); }
static torch::Tensor powOp(const torch::Tensor& a, const torch::Scalar& b) { return torch::pow(a, b); }
static torch::Tensor remOp(const torch::Tensor& a, const torch::Tensor& b) { return torch::remainder(a, b); }
static torch::Tensor remOp(const torch::Tensor& a, const torch::Scalar& b) { return torch::remainder(a, b); }
static torch::Tensor fdivOp(const torch::Tensor& a, const torch::Tensor& b) { return torch::div(a, b, "floor"); }
static torch::Tensor fdivOp(const torch::Tensor& a, const torch::Scalar& b) { return torch::div(a, b, "floor"); }
static torch::Tensor eqOp(const torch::Tensor& a, const torch::Tensor& b) { return torch::eq(a, b); }
static torch::Tensor eqOp(const torch::Tensor& a, const torch::Scalar& b) { return torch::eq(a, b); }
static torch::Tensor neOp(const torch::Tensor& a, const torch::Tensor& b) { return torch::ne(a, b); }
static torch::Tensor neOp(const torch::Tensor& a, const torch::Scalar& b) { return torch::ne(a, b); }
static torch::Tensor ltOp(const torch::Tensor& a, const torch::Tensor& b) { return torch::lt(a, b); }
static torch::Tensor ltOp(const torch::Tensor& a, const torch::Scalar& b) { return torch::lt(a, b); }
static torch::Tensor leOp(const torch::Tensor& a, const torch::Tensor& b) { return torch::le(a, b); }
static torch::Tensor leOp(const torch::Tensor& a, const torch::Scalar& b) { return torch::le(a, b); }
static torch::Tensor gtOp(const torch::Tensor& a, const torch::Tensor& b) { return torch::gt(a, b); }
static torch::Tensor gtOp(const torch::Tensor& a, const torch::Scalar& b) { return torch::gt(a, b); }
static torch::Tensor geOp(const torch::Tensor& a, const torch::Tensor& b) { return torch::ge(a, b); }
static torch::Tensor geOp(const torch::Tensor& a, const torch::Scalar& b) { return torch::ge(a, b); }

static c10::optional<torch::Scalar> optScalar(const Napi::Value& v) {
  if (v.IsUndefined() || v.IsNull()) return c10::nullopt;
  return scalar(v);
}

void registerOps(Napi::Env env, Napi::Object exports) {
  BINARY("add", addOp);
  BINARY("sub", subOp);
  BINARY("rsub", rsubOp);
  BINARY("mul", mulOp);
  BINARY("div", divOp);
  BINARY("pow", powOp);
  BINARY("remainder", remOp);
  BINARY("floorDivide", fdivOp);
  BINARY("eq", eqOp);
  BINARY("ne", neOp);
  BINARY("lt", ltOp);
  BINARY("le", leOp);
  BINARY("gt", gtOp);
  BINARY("ge", geOp);
  def(env, exports, "maximum", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::maximum(T(info, 0), T(info, 1))); });
  def(env, exports, "minimum", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::minimum(T(info, 0), T(info, 1))); });
  def(env, exports, "logicalAnd", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::logical_and(T(info, 0), T(info, 1))); });
  def(env, exports, "logicalOr", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::logical_or(T(info, 0), T(info, 1))); });
  def(env, exports, "matmul", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::matmul(T(info, 0), T(info, 1))); });
  def(env, exports, "clamp", [](CI info) -> Napi::Value {
    return wrap(info.Env(), torch::clamp(T(info, 0), optScalar(info[1]), optScalar(info[2])));
  });

  UNARY("neg", torch::neg(a));
  UNARY("exp", torch::exp(a));
  UNARY("log", torch::log(a));
  UNARY("log1p", torch::log1p(a));
  UNARY("sqrt", torch::sqrt(a));
  UNARY("rsqrt", torch::rsqrt(a));
  UNARY("abs", torch::abs(a));
  UNARY("sign", torch::sign(a));
  UNARY("sin", torch::sin(a));
  UNARY("cos", torch::cos(a));
  UNARY("floor", torch::floor(a));
  UNARY("ceil", torch::ceil(a));
  UNARY("round", torch::round(a));
  UNARY("reciprocal", torch::reciprocal(a));
  UNARY("square", torch::square(a));
  UNARY("logicalNot", torch::logical_not(a));
  UNARY("isnan", torch::isnan(a));
  UNARY("isfinite", torch::isfinite(a));
  UNARY("relu", torch::relu(a));
  UNARY("relu6", torch::hardtanh(a, 0.0, 6.0));
  UNARY("sigmoid", torch::sigmoid(a));
  UNARY("tanh", torch::tanh(a));
  UNARY("silu", torch::silu(a));
  UNARY("erf", torch::erf(a));
  UNARY("erfinv", torch::erfinv(a));
  def(env, exports, "gelu", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::gelu(T(info, 0), str(info, 1))); });
  def(env, exports, "leakyRelu", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::leaky_relu(T(info, 0), f64(info, 1))); });

  // Reductions. dims === null means "all dimensions".
  def(env, exports, "sum", [](CI info) -> Napi::Value {
    auto dims = optIntList(info[1]);
    return wrap(info.Env(), dims ? torch::sum(T(info, 0), *dims, flag(info, 2)) : torch::sum(T(info, 0)));
  });
  def(env, exports, "mean", [](CI info) -> Napi::Value {
    auto dims = optIntList(info[1]);
    return wrap(info.Env(), dims ? torch::mean(T(info, 0), *dims, flag(info, 2)) : torch::mean(T(info, 0)));
  });
  def(env, exports, "amax", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::amax(T(info, 0), intList(info[1]), flag(info, 2))); });
  def(env, exports, "amin", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::amin(T(info, 0), intList(info[1]), flag(info, 2))); });
  def(env, exports, "var", [](CI info) -> Napi::Value {
    auto dims = optIntList(info[1]);
    at::OptionalIntArrayRef ref = dims ? at::OptionalIntArrayRef(*dims) : c10::nullopt;
    return wrap(info.Env(), torch::var(T(info, 0), ref, flag(info, 2), flag(info, 3)));
  });
  def(env, exports, "std", [](CI info) -> Napi::Value {
    auto dims = optIntList(info[1]);
    at::OptionalIntArrayRef ref = dims ? at::OptionalIntArrayRef(*dims) : c10::nullopt;
    return wrap(info.Env(), torch::std(T(info, 0), ref, flag(info, 2), flag(info, 3)));
  });
  def(env, exports, "logsumexp", [](CI info) -> Napi::Value {
    return wrap(info.Env(), torch::logsumexp(T(info, 0), intList(info[1]), flag(info, 2)));
  });
  def(env, exports, "prod", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::prod(T(info, 0))); });
  def(env, exports, "cumsum", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::cumsum(T(info, 0), i64(info, 1))); });
  def(env, exports, "all", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::all(T(info, 0))); });
  def(env, exports, "any", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::any(T(info, 0))); });
  def(env, exports, "norm", [](CI info) -> Napi::Value {
    auto dims = optIntList(info[2]);
    return wrap(info.Env(), dims ? torch::norm(T(info, 0), f64(info, 1), *dims, flag(info, 3)) : torch::norm(T(info, 0), f64(info, 1)));
  });
  def(env, exports, "argmax", [](CI info) -> Napi::Value {
    c10::optional<int64_t> dim;
    if (!info[1].IsNull() && !info[1].IsUndefined()) dim = i64(info, 1);
    return wrap(info.Env(), torch::argmax(T(info, 0), dim, flag(info, 2)));
  });
  def(env, exports, "argmin", [](CI info) -> Napi::Value {
    c10::optional<int64_t> dim;
    if (!info[1].IsNull() && !info[1].IsUndefined()) dim = i64(info, 1);
    return wrap(info.Env(), torch::argmin(T(info, 0), dim, flag(info, 2)));
  });
  def(env, exports, "maxDim", [](CI info) -> Napi::Value { return pair(info.Env(), torch::max(T(info, 0), i64(info, 1), flag(info, 2))); });
  def(env, exports, "minDim", [](CI info) -> Napi::Value { return pair(info.Env(), torch::min(T(info, 0), i64(info, 1), flag(info, 2))); });
  def(env, exports, "topk", [](CI info) -> Napi::Value {
    return pair(info.Env(), torch::topk(T(info, 0), i64(info, 1), i64(info, 2), flag(info, 3), flag(info, 4)));
  });
  def(env, exports, "sort", [](CI info) -> Napi::Value { return pair(info.Env(), torch::sort(T(info, 0), i64(info, 1), flag(info, 2))); });

  // Shape and indexing.
  def(env, exports, "reshape", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::reshape(T(info, 0), intList(info[1]))); });
  def(env, exports, "permute", [](CI info) -> Napi::Value { return wrap(info.Env(), T(info, 0).permute(intList(info[1]))); });
  def(env, exports, "transpose", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::transpose(T(info, 0), i64(info, 1), i64(info, 2))); });
  def(env, exports, "flatten", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::flatten(T(info, 0), i64(info, 1), i64(info, 2))); });
  def(env, exports, "squeeze", [](CI info) -> Napi::Value {
    if (info[1].IsNull() || info[1].IsUndefined()) return wrap(info.Env(), torch::squeeze(T(info, 0)));
    return wrap(info.Env(), torch::squeeze(T(info, 0), i64(info, 1)));
  });
  def(env, exports, "unsqueeze", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::unsqueeze(T(info, 0), i64(info, 1))); });
  def(env, exports, "expand", [](CI info) -> Napi::Value { return wrap(info.Env(), T(info, 0).expand(intList(info[1]))); });
  def(env, exports, "repeat", [](CI info) -> Napi::Value { return wrap(info.Env(), T(info, 0).repeat(intList(info[1]))); });
  def(env, exports, "flip", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::flip(T(info, 0), intList(info[1]))); });
  def(env, exports, "roll", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::roll(T(info, 0), intList(info[1]), intList(info[2]))); });
  def(env, exports, "tril", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::tril(T(info, 0), i64(info, 1))); });
  def(env, exports, "triu", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::triu(T(info, 0), i64(info, 1))); });
  def(env, exports, "cat", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::cat(tensorList(info[0]), i64(info, 1))); });
  def(env, exports, "stack", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::stack(tensorList(info[0]), i64(info, 1))); });
  def(env, exports, "split", [](CI info) -> Napi::Value { return list(info.Env(), torch::split(T(info, 0), i64(info, 1), i64(info, 2))); });
  def(env, exports, "slice", [](CI info) -> Napi::Value {
    return wrap(info.Env(), T(info, 0).slice(i64(info, 1), i64(info, 2), i64(info, 3), i64(info, 4)));
  });
  def(env, exports, "select", [](CI info) -> Napi::Value { return wrap(info.Env(), T(info, 0).select(i64(info, 1), i64(info, 2))); });
  def(env, exports, "indexSelect", [](CI info) -> Napi::Value {
    return wrap(info.Env(), torch::index_select(T(info, 0), i64(info, 1), T(info, 2)));
  });
  def(env, exports, "indexCopy", [](CI info) -> Napi::Value {
    return wrap(info.Env(), torch::index_copy(T(info, 0), i64(info, 1), T(info, 2), T(info, 3)));
  });
  def(env, exports, "gather", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::gather(T(info, 0), i64(info, 1), T(info, 2))); });
  def(env, exports, "scatter", [](CI info) -> Napi::Value {
    if (isTensor(info[3])) return wrap(info.Env(), torch::scatter(T(info, 0), i64(info, 1), T(info, 2), T(info, 3)));
    return wrap(info.Env(), torch::scatter(T(info, 0), i64(info, 1), T(info, 2), scalar(info[3])));
  });
  def(env, exports, "scatterAdd", [](CI info) -> Napi::Value {
    return wrap(info.Env(), torch::scatter_add(T(info, 0), i64(info, 1), T(info, 2), T(info, 3)));
  });
  def(env, exports, "where", [](CI info) -> Napi::Value {
    auto& c = T(info, 0);
    bool ta = isTensor(info[1]), tb = isTensor(info[2]);
    if (ta && tb) return wrap(info.Env(), torch::where(c, T(info, 1), T(info, 2)));
    if (ta) return wrap(info.Env(), torch::where(c, T(info, 1), scalar(info[2])));
    if (tb) return wrap(info.Env(), torch::where(c, scalar(info[1]), T(info, 2)));
    return wrap(info.Env(), torch::where(c, scalar(info[1]), scalar(info[2])));
  });
  def(env, exports, "maskedFill", [](CI info) -> Napi::Value {
    return wrap(info.Env(), torch::masked_fill(T(info, 0), T(info, 1), scalar(info[2])));
  });
  def(env, exports, "maskedSelect", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::masked_select(T(info, 0), T(info, 1))); });
  def(env, exports, "nonzero", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::nonzero(T(info, 0))); });
  def(env, exports, "oneHot", [](CI info) -> Napi::Value { return wrap(info.Env(), torch::one_hot(T(info, 0), i64(info, 1))); });
  def(env, exports, "pad", [](CI info) -> Napi::Value {
    namespace F = torch::nn::functional;
    auto mode = str(info, 2);
    auto opts = F::PadFuncOptions(intList(info[1]));
    if (mode == "constant") opts = opts.mode(torch::kConstant).value(f64(info, 3));
    else if (mode == "reflect") opts = opts.mode(torch::kReflect);
    else if (mode == "replicate") opts = opts.mode(torch::kReplicate);
    else if (mode == "circular") opts = opts.mode(torch::kCircular);
    else throw std::runtime_error("unknown mode '" + mode + "'");
    return wrap(info.Env(), F::pad(T(info, 0), opts));
  });

  // In-place updates, for optimizers and initialisers (callers run them under no-grad).
  def(env, exports, "add_", [](CI info) -> Napi::Value {
    auto& a = T(info, 0);
    if (isTensor(info[1])) a.add_(T(info, 1), scalar(info[2]));
    else a.add_(scalar(info[1]));
    return info.Env().Undefined();
  });
  INPLACE_BINARY("mul_", mul_);
  INPLACE_BINARY("div_", div_);
  def(env, exports, "copy_", [](CI info) -> Napi::Value { T(info, 0).copy_(T(info, 1)); return info.Env().Undefined(); });
  def(env, exports, "zero_", [](CI info) -> Napi::Value { T(info, 0).zero_(); return info.Env().Undefined(); });
  def(env, exports, "fill_", [](CI info) -> Napi::Value { T(info, 0).fill_(scalar(info[1])); return info.Env().Undefined(); });
  def(env, exports, "addcmul_", [](CI info) -> Napi::Value {
    T(info, 0).addcmul_(T(info, 1), T(info, 2), scalar(info[3]));
    return info.Env().Undefined();
  });
  def(env, exports, "addcdiv_", [](CI info) -> Napi::Value {
    T(info, 0).addcdiv_(T(info, 1), T(info, 2), scalar(info[3]));
    return info.Env().Undefined();
  });
  def(env, exports, "lerp_", [](CI info) -> Napi::Value { T(info, 0).lerp_(T(info, 1), scalar(info[2])); return info.Env().Undefined(); });
  def(env, exports, "clamp_", [](CI info) -> Napi::Value {
    T(info, 0).clamp_(optScalar(info[1]), optScalar(info[2]));
    return info.Env().Undefined();
  });
  def(env, exports, "maximum_", [](CI info) -> Napi::Value {
    auto& a = T(info, 0);
    torch::maximum_out(a, a, T(info, 1));
    return info.Env().Undefined();
  });
}

}  // namespace bx
