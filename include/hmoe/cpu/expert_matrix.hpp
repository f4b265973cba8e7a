/// \file
/// \brief `ExpertMatrix`: one expert weight matrix bound, at load, to the CPU kernel that multiplies it.
///
/// The layer's policies say which kernels may be used (`Isa<AVX512|AMX>`, `Quant<...>`); the file says what
/// each tensor holds. Real Q4_K_M files mix formats inside one layer (ffn_down_exps is Q6_K in some layers),
/// so the choice is made per matrix, once, here; the hot loop then visits a variant, never a table of
/// function pointers per block. A combination the policies do not allow is a load error naming the tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>

#include "hmoe/cpu/amx/matmul.hpp"
#include "hmoe/cpu/avx512/matmul.hpp"
#include "hmoe/model/hparams.hpp"
#include "hmoe/policy/isa.hpp"
#include "hmoe/policy/quant.hpp"
#include "hmoe/quant/weight_view.hpp"

namespace hmoe::cpu {

/// Rows exactly as the file stores them, multiplied by the AVX-512 kernel for format F: read in place from the
/// file's mapping, or from a copy (`copy`, with `w.data` pointing into it).
template <class F>
struct StoredRows {
  using format = F;
  WeightMatrix w;
  amx::AlignedBytes copy;
};

/// Where `bind_expert_matrix` leaves rows that run as stored: read in place from the file's mapping, or copied
/// into memory the binding thread allocates and writes. A mapped page lands on whichever NUMA node the page
/// cache put it, and first touch cannot move it; a copy made by a thread of the owner node lands on that node
/// (NUMA sharding, FusedExperts::bind). The copy replaces the mapping for these rows: the kernels never read
/// those file pages again, so the page cache may drop them.
enum class Rows { Mapped, Copied };

template <class K> inline constexpr bool is_stored = false;
template <class F> inline constexpr bool is_stored<StoredRows<F>> = true;

/// The activation formats the kernels read. Matrices that read the same one share a quantized input.
enum class ActivationFormat { Q8_K, Q8_0, BF16, AmxInt8, AmxBF16 };

class ExpertMatrix {
 public:
  using Kernel = std::variant<StoredRows<Q4_K>, StoredRows<Q5_K>, StoredRows<Q6_K>, StoredRows<Q5_0>,
                              StoredRows<Q8_0>, StoredRows<BF16>, amx::PackedQ4K, amx::PackedInt8, amx::PackedBF16,
                              amx::PackedQ8Blocks, amx::PackedQ5Blocks>;

  /// `tiles`: whether the packed AMX formats may use tiles (Isa<AMX>) or only their AVX-512 kernel (Isa<AVX512>).
  ExpertMatrix(Kernel kernel, std::int64_t rows, std::int64_t cols, bool tiles)
      : kernel_(std::move(kernel)), rows_(rows), cols_(cols), tiles_(tiles) {}

  std::int64_t rows() const { return rows_; }
  std::int64_t cols() const { return cols_; }

  ActivationFormat activation_format() const {
    return std::visit(
        []<class K>(const K&) {
          if constexpr (std::is_same_v<K, StoredRows<Q8_0>> || std::is_same_v<K, StoredRows<Q5_0>> ||
                        std::is_same_v<K, amx::PackedQ8Blocks> || std::is_same_v<K, amx::PackedQ5Blocks>)
            return ActivationFormat::Q8_0;
          else if constexpr (std::is_same_v<K, StoredRows<BF16>>) return ActivationFormat::BF16;
          else if constexpr (std::is_same_v<K, amx::PackedInt8>) return ActivationFormat::AmxInt8;
          else if constexpr (std::is_same_v<K, amx::PackedBF16>) return ActivationFormat::AmxBF16;
          else return ActivationFormat::Q8_K;  // Q4_K, Q5_K, Q6_K rows and the packed Q4_K all read Q8_K
        },
        kernel_);
  }

  /// Bytes of one quantized input row (cols() values).
  std::size_t activation_row_bytes() const {
    return std::visit(
        [&]<class K>(const K& k) -> std::size_t {
          if constexpr (is_stored<K>) return avx512::activation_row_bytes<typename K::format>(cols_);
          else return amx::activation_row_bytes(k);
        },
        kernel_);
  }

  /// Quantizes one f32 input row of cols() values into `out` (activation_row_bytes() bytes).
  void quantize_activation(const float* x, std::byte* out) const {
    std::visit(
        [&]<class K>(const K& k) {
          if constexpr (is_stored<K>) avx512::quantize_activation_row<typename K::format>(x, cols_, out);
          else amx::quantize_activation_row(k, x, out);
        },
        kernel_);
  }

  /// Rows handed to one task must start at a multiple of this (the AMX panel height).
  std::int64_t row_align() const {
    return std::visit([]<class K>(const K&) -> std::int64_t { return is_stored<K> ? 1 : 16; }, kernel_);
  }

  /// y[t * ldy + r] = row r · input t, for r in [row_begin, row_end) and t in [0, tokens).
  void matmul(std::int64_t row_begin, std::int64_t row_end, const std::byte* act, std::size_t act_row_bytes,
              std::int64_t tokens, float* y, std::int64_t ldy) const {
    std::visit(
        [&]<class K>(const K& k) {
          if constexpr (is_stored<K>)
            avx512::matmul<typename K::format>(k.w.data, k.w.row_bytes, cols_, row_begin, row_end, act, act_row_bytes,
                                               tokens, y, ldy);
          else if (tiles_)
            amx::matmul(k, row_begin, row_end, act, act_row_bytes, tokens, y, ldy);
          else
            amx::matmul_vector(k, row_begin, row_end, act, act_row_bytes, tokens, y, ldy);
        },
        kernel_);
  }

  /// Whether the kernel reads the weights in place from the file's mapping (stored rows bound with Rows::Mapped),
  /// rather than from memory allocated at load (packed formats, copied rows).
  bool reads_mapping() const {
    return std::visit(
        []<class K>(const K& k) {
          if constexpr (is_stored<K>) return k.copy.size() == 0;
          else return false;
        },
        kernel_);
  }

  /// "AVX512 Q6_K", "AMX Q4_K", ...: what the load report prints.
  std::string kernel_name() const {
    return std::visit(
        [&]<class K>(const K&) -> std::string {
          if constexpr (is_stored<K>) return "AVX512 " + std::string(K::format::name);
          else {
            const std::string isa = tiles_ ? "AMX " : "AVX512 packed ";
            if constexpr (std::is_same_v<K, amx::PackedQ4K>) return isa + "Q4_K";
            else if constexpr (std::is_same_v<K, amx::PackedInt8>) return isa + "Int8";
            else if constexpr (std::is_same_v<K, amx::PackedQ8Blocks>) return isa + "Q8_0 blocks";
            else if constexpr (std::is_same_v<K, amx::PackedQ5Blocks>) return isa + "Q5_0 6-bit blocks";
            else return isa + "BF16";
          }
        },
        kernel_);
  }

 private:
  Kernel kernel_;
  std::int64_t rows_, cols_;
  bool tiles_;
};

namespace detail {

[[noreturn]] inline void refuse(const WeightMatrix& w, std::string_view isa, std::string_view quant, std::string_view hint) {
  throw ModelError("hmoe: " + w.name + " is stored as " + std::string(ggml_type_name(w.type)) + ", which Isa<" +
                   std::string(isa) + "> with Quant<" + std::string(quant) + "> cannot run; " + std::string(hint));
}

/// w's rows as stored, in place or copied (the copy is allocated, zeroed and filled by this thread).
template <class F>
StoredRows<F> stored_rows(const WeightMatrix& w, Rows rows) {
  StoredRows<F> s{w, {}};
  if (rows == Rows::Copied) {
    s.copy = amx::AlignedBytes(static_cast<std::size_t>(w.rows) * w.row_bytes);
    std::memcpy(s.copy.data(), w.data, s.copy.size());
    s.w.data = s.copy.data();
  }
  return s;
}

/// The stored ggml rows with the AVX-512 kernel for their format, if there is one.
inline bool bind_stored(const WeightMatrix& w, Rows rows, ExpertMatrix::Kernel& k) {
  switch (w.type) {
    case GgmlType::Q4_K: k = stored_rows<Q4_K>(w, rows); return true;
    case GgmlType::Q5_K: k = stored_rows<Q5_K>(w, rows); return true;
    case GgmlType::Q6_K: k = stored_rows<Q6_K>(w, rows); return true;
    case GgmlType::Q5_0: k = stored_rows<Q5_0>(w, rows); return true;
    case GgmlType::Q8_0: k = stored_rows<Q8_0>(w, rows); return true;
    case GgmlType::BF16: k = stored_rows<BF16>(w, rows); return true;
    default: return false;
  }
}

}  // namespace detail

/// Binds `w` to a kernel the policies allow:
/// - `Quant<Stored>`: each matrix in its stored format. AVX-512 runs Q4_K, Q5_K, Q6_K, Q5_0, Q8_0 and BF16
///   rows as stored; AMX additionally repacks Q4_K, BF16, Q8_0 and Q5_0 into tile panels (same numbers), and
///   leaves the rest to AVX-512.
/// - `Quant<Q4_K|Q5_K|Q6_K|Q5_0|Q8_0>`: the file must store exactly that format (no silent conversion).
/// - `Quant<Int8>` / `Quant<BF16>`: converted at load from any stored format (Int8 is lossy: per-channel
///   scales; BF16 from a quantized file is exact, from F32 rounds).
/// `rows` says whether rows that run as stored stay in the mapping or are copied (NUMA placement); packed
/// formats are always new memory, written by the calling thread.
template <class IsaTag, class Format>
ExpertMatrix bind_expert_matrix(const WeightMatrix& w, Rows rows = Rows::Mapped) {
  static_assert(std::is_same_v<IsaTag, AVX512> || std::is_same_v<IsaTag, AMX>,
                "hmoe: bind_expert_matrix is for the AVX-512 and AMX kernels; Isa<Generic> uses the reference path");
  constexpr bool amx_tiles = std::is_same_v<IsaTag, AMX>;
  ExpertMatrix::Kernel k;
  if constexpr (std::is_same_v<Format, Stored>) {
    if (amx_tiles && w.type == GgmlType::Q4_K) k = amx::PackedQ4K::pack(w);
    else if (amx_tiles && w.type == GgmlType::BF16) k = amx::PackedBF16::pack(w);
    else if (amx_tiles && w.type == GgmlType::Q8_0) k = amx::PackedQ8Blocks::pack(w);
    else if (amx_tiles && w.type == GgmlType::Q5_0) k = amx::PackedQ5Blocks::pack(w);
    else if (!detail::bind_stored(w, rows, k))
      detail::refuse(w, IsaTag::name, Format::name, "convert it with Quant<Int8> or Quant<BF16>, or use Isa<Generic>");
  } else if constexpr (std::is_same_v<Format, Int8>) {
    k = amx::PackedInt8::pack(w);
  } else if constexpr (std::is_same_v<Format, BF16>) {
    if (!amx_tiles && w.type == GgmlType::BF16) k = detail::stored_rows<BF16>(w, rows);
    else k = amx::PackedBF16::pack(w);
  } else {
    if (w.type != *Format::ggml)
      detail::refuse(w, IsaTag::name, Format::name, "use Quant<Stored> to run each tensor in the format the file stores");
    if constexpr (amx_tiles && std::is_same_v<Format, Q4_K>) k = amx::PackedQ4K::pack(w);
    else k = detail::stored_rows<Format>(w, rows);
  }
  return ExpertMatrix(std::move(k), w.rows, w.cols, amx_tiles);
}

}  // namespace hmoe::cpu
