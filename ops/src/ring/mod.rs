//! Tensors over rings and small fields, as plain `ndarray` arrays.
//!
//! - Z_2^64: `ArrayD<u64>` with wrapping arithmetic ([`add`], [`sub`], [`mul`], [`neg`],
//!   [`mul_scalar`], shifts, sums, and in place [`add_assign`] and friends), the blocked GEMM
//!   [`matmul`] (parallel for large products) and [`conv2d`].
//!   Fixed-point reals live here as two's-complement words (see [`crate::fixed`]).
//! - Z_{2^64-1}: `ArrayD<u64>` in `0..u64::MAX` ([`odd_add`] and friends).
//! - Z_p for a small prime p: `ArrayD<u8>` through [`PrimeField`].
//! - Bits: [`bit_decompose`] / [`bit_compose`].
//!
//! Functions take `&ArrayRefD<T>`, so an owned `ArrayD<T>` or any view can be passed by
//! reference. Binary elementwise operations broadcast like NumPy (see [`broadcast_shape`]).

mod arith;
mod assign;
mod bits;
mod carry;
mod conv;
mod conv_grad;
mod field;
mod kernels;
mod lanes;
mod low_bytes;
mod matmul;
mod matmul_tn;
mod odd;
mod pack;
mod repeat;
mod securenn;
mod shape;
mod small_pack;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_conv_grad;
#[cfg(test)]
mod tests_matmul;

pub use arith::{
    add, add_scalar, broadcast_shape, from_i64, map_with, mul, mul_scalar, mul_wide_shr, neg, shl,
    shr_arith, shr_logical, sub, sum_all, sum_axis, to_i64, zip_with, PAR_THRESHOLD,
};
pub use assign::{
    add_assign, map_assign, mul_assign, shl_assign, shr_arith_assign, shr_logical_assign,
    sub_assign, zip_assign,
};
pub use bits::{bit_compose, bit_decompose, bit_decompose_low, WORD_BITS};
pub use carry::{
    bit_planes, carry_combine, carry_deal, carry_dealt, carry_groups, carry_leaves, carry_levels,
    carry_open, carry_opened, carry_out, carry_pairs, carry_products, plane_bits, plane_blocks,
};
pub use conv::conv2d;
pub use conv_grad::{conv2d_backprop_filter, conv2d_backprop_input};
pub use field::{field_bits, PrimeField, Reduce16};
pub use lanes::{concat, iota, one_hot, rotate_last, strided_slice, windows, windows_add};
pub use low_bytes::{from_low_bytes, low_bytes};
pub use matmul::{matmul, matmul_2d, matmul_naive, KC, MC, MR, NR};
pub use odd::{
    odd_add, odd_add_words, odd_mul, odd_mul_scalar, odd_mul_words, odd_neg, odd_neg_word,
    odd_reduce, odd_reduce_word, odd_sub, odd_sub_words, ODD_MODULUS,
};
pub use securenn::{
    any_zero, any_zero_sum, any_zero_sum_packed, bits_minus, bits_to_words, is_zero, lsb,
    private_compare_masked, private_compare_packed, wrap, xor_public_bit, xor_public_bit_times,
};
pub use shape::{checked_len, contiguous, reshape, reshape_owned, transpose, transpose_2d};
pub use small_pack::{
    pack_small, pack_small_into, packed_small_len, unpack_small, unpack_small_into,
};
