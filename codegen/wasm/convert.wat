;; SIMD kernels for src/tensor/convert.ts: element conversions between F32, F16 and BF16 bits.
;; Assembled by codegen/generate-wasm.ts into src/tensor/convert-wasm.generated.ts.
;;
;; Every kernel gives exactly the bits of the scalar reference in convert.ts (f16BitsToF32Bits,
;; f32BitsToF16Bits, f32BitsToBf16Bits; half <-> half goes through float32 bits, as the reference
;; does): round to nearest even, overflow to inf, subnormals, NaN kept NaN and made quiet with its
;; top payload bits. test/convert-lut.test.ts checks all 65536 half inputs in each direction and
;; every float32 high half with the low bits that decide rounding.
;;
;; The memory is imported, shared, so that JS can hand its buffers to worker threads in place (the
;; artifact writer reads checkpoint chunks into it, converts there and hashes the results on a
;; worker). Exports take (src, dst, n): byte addresses in that memory and an element count that
;; must be a multiple of 16 (the caller converts any remainder itself). Little-endian, like wasm
;; memory; src and dst may not overlap.
;;
;; The float32 -> half kernels compute every case in all lanes and pick with bitselect. The
;; half -> half kernels take a fast path when all 16 elements of an iteration are zero or in the
;; range where the conversion is exact bit shuffling (nearly always, for real weights); otherwise
;; that iteration goes through float32 with the general helpers below.
(module
  (import "env" "memory" (memory 1 65536 shared))

  ;; ------------------------------------------------------------------------------------------
  ;; Four lanes of float32 bits -> half bits (in the low 16 bits of each lane)

  ;; f32BitsToF16Bits
  (func $f32_f16 (param $f v128) (result v128)
    (local $a v128) (local $r v128)
    (local.set $a (v128.and (local.get $f) (v128.const i32x4 0x7fffffff 0x7fffffff 0x7fffffff 0x7fffffff)))
    ;; Normal halves (2^-14 <= |f| < 2^16): rebias the exponent by -112 and drop 13 mantissa
    ;; bits, adding 0xfff plus the lowest kept bit so ties round to even (a carry may reach inf).
    (local.set $r
      (i32x4.shr_u
        (i32x4.add
          (i32x4.add (local.get $a) (v128.const i32x4 0xc8000fff 0xc8000fff 0xc8000fff 0xc8000fff))
          (v128.and (i32x4.shr_u (local.get $a) (i32.const 13)) (v128.const i32x4 1 1 1 1)))
        (i32.const 13)))
    ;; Below 2^-14: |f| + 0.5 has an ulp of 2^-24, the half subnormal step, so the float add
    ;; rounds |f| to that grid, ties to even; the result's low bits are the half's bits.
    (local.set $r
      (v128.bitselect
        (i32x4.sub
          (f32x4.add (local.get $a) (v128.const f32x4 0.5 0.5 0.5 0.5))
          (v128.const i32x4 0x3f000000 0x3f000000 0x3f000000 0x3f000000))
        (local.get $r)
        (i32x4.lt_u (local.get $a) (v128.const i32x4 0x38800000 0x38800000 0x38800000 0x38800000))))
    ;; 2^16 and above (inf included) overflow to inf.
    (local.set $r
      (v128.bitselect
        (v128.const i32x4 0x7c00 0x7c00 0x7c00 0x7c00)
        (local.get $r)
        (i32x4.ge_u (local.get $a) (v128.const i32x4 0x47800000 0x47800000 0x47800000 0x47800000))))
    ;; NaN: quiet, with the top 10 payload bits.
    (local.set $r
      (v128.bitselect
        (v128.or
          (v128.and (i32x4.shr_u (local.get $a) (i32.const 13)) (v128.const i32x4 0x3ff 0x3ff 0x3ff 0x3ff))
          (v128.const i32x4 0x7e00 0x7e00 0x7e00 0x7e00))
        (local.get $r)
        (i32x4.gt_u (local.get $a) (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000))))
    (v128.or
      (local.get $r)
      (v128.and (i32x4.shr_u (local.get $f) (i32.const 16)) (v128.const i32x4 0x8000 0x8000 0x8000 0x8000))))

  ;; f32BitsToBf16Bits
  (func $f32_bf16 (param $f v128) (result v128)
    (local $high v128)
    (local.set $high (i32x4.shr_u (local.get $f) (i32.const 16)))
    (v128.bitselect
      ;; NaN: the top 16 bits, made quiet.
      (v128.or (local.get $high) (v128.const i32x4 0x40 0x40 0x40 0x40))
      ;; Otherwise add 0x7fff plus the lowest kept bit: ties to even, a carry may reach inf.
      (i32x4.shr_u
        (i32x4.add
          (i32x4.add (local.get $f) (v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff))
          (v128.and (local.get $high) (v128.const i32x4 1 1 1 1)))
        (i32.const 16))
      (i32x4.gt_u
        (v128.and (local.get $f) (v128.const i32x4 0x7fffffff 0x7fffffff 0x7fffffff 0x7fffffff))
        (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000))))

  ;; ------------------------------------------------------------------------------------------
  ;; Four lanes of half bits (low 16 bits of each lane, high bits zero) -> float32 bits

  ;; f16BitsToF32Bits
  (func $f16_f32 (param $h v128) (result v128)
    (local $a v128) (local $r v128)
    (local.set $a (v128.and (local.get $h) (v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff)))
    ;; Normal: rebias the exponent by +112.
    (local.set $r (i32x4.add (i32x4.shl (local.get $a) (i32.const 13)) (v128.const i32x4 0x38000000 0x38000000 0x38000000 0x38000000)))
    ;; Zero and subnormal: the value is mantissa * 2^-24, exact in float32.
    (local.set $r
      (v128.bitselect
        (f32x4.mul (f32x4.convert_i32x4_u (local.get $a)) (v128.const f32x4 0x1p-24 0x1p-24 0x1p-24 0x1p-24))
        (local.get $r)
        (i32x4.lt_u (local.get $a) (v128.const i32x4 0x400 0x400 0x400 0x400))))
    ;; Inf and NaN: all-ones exponent, payload kept.
    (local.set $r
      (v128.bitselect
        (v128.or (i32x4.shl (local.get $a) (i32.const 13)) (v128.const i32x4 0x7f800000 0x7f800000 0x7f800000 0x7f800000))
        (local.get $r)
        (i32x4.ge_u (local.get $a) (v128.const i32x4 0x7c00 0x7c00 0x7c00 0x7c00))))
    (v128.or
      (local.get $r)
      (i32x4.shl (v128.and (local.get $h) (v128.const i32x4 0x8000 0x8000 0x8000 0x8000)) (i32.const 16))))

  ;; ------------------------------------------------------------------------------------------
  ;; Eight halves at a time through float32, for the iterations the fast paths do not cover

  (func $bf16_f16_general (param $v v128) (result v128)
    (i16x8.narrow_i32x4_u
      (call $f32_f16 (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $v)) (i32.const 16)))
      (call $f32_f16 (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $v)) (i32.const 16)))))

  (func $f16_bf16_general (param $v v128) (result v128)
    (i16x8.narrow_i32x4_u
      (call $f32_bf16 (call $f16_f32 (i32x4.extend_low_i16x8_u (local.get $v))))
      (call $f32_bf16 (call $f16_f32 (i32x4.extend_high_i16x8_u (local.get $v))))))

  ;; ------------------------------------------------------------------------------------------
  ;; Half -> half, 16 elements per iteration

  ;; BF16 -> F16. Exact for exponents 113..142 (F16's normal range): f16 = sign | (bits - (112 << 7)) << 3;
  ;; zero keeps its sign. An iteration takes the fast path when, in every lane, `bits & 0x7fff` is
  ;; zero or minus (113 << 7) (wrapping) is below 30 << 7: the unsigned maximum over both vectors
  ;; of those lane values, zeros counted as 0, minus (30 << 7) - 1 saturates to all zeros.
  (func (export "bf16_to_f16") (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32) (local $v0 v128) (local $v1 v128) (local $a0 v128) (local $a1 v128) (local $z0 v128) (local $z1 v128)
    (local $magnitude v128) (local $low v128) (local $limit v128) (local $rebias v128)
    (local.set $magnitude (v128.const i16x8 0x7fff 0x7fff 0x7fff 0x7fff 0x7fff 0x7fff 0x7fff 0x7fff))
    (local.set $low (v128.const i16x8 0x3880 0x3880 0x3880 0x3880 0x3880 0x3880 0x3880 0x3880))
    (local.set $limit (v128.const i16x8 0x0eff 0x0eff 0x0eff 0x0eff 0x0eff 0x0eff 0x0eff 0x0eff))
    (local.set $rebias (v128.const i16x8 0x3800 0x3800 0x3800 0x3800 0x3800 0x3800 0x3800 0x3800))
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 1))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $v0 (v128.load (local.get $src)))
        (local.set $v1 (v128.load offset=16 (local.get $src)))
        (local.set $a0 (v128.and (local.get $v0) (local.get $magnitude)))
        (local.set $a1 (v128.and (local.get $v1) (local.get $magnitude)))
        (local.set $z0 (i16x8.eq (local.get $a0) (v128.const i64x2 0 0)))
        (local.set $z1 (i16x8.eq (local.get $a1) (v128.const i64x2 0 0)))
        (if
          (v128.any_true
            (i16x8.sub_sat_u
              (i16x8.max_u
                (v128.andnot (i16x8.sub (local.get $a0) (local.get $low)) (local.get $z0))
                (v128.andnot (i16x8.sub (local.get $a1) (local.get $low)) (local.get $z1)))
              (local.get $limit)))
          (then
            (v128.store (local.get $dst) (call $bf16_f16_general (local.get $v0)))
            (v128.store offset=16 (local.get $dst) (call $bf16_f16_general (local.get $v1))))
          (else
            (v128.store (local.get $dst)
              (v128.or
                (v128.andnot (i16x8.shl (i16x8.sub (local.get $a0) (local.get $rebias)) (i32.const 3)) (local.get $z0))
                (v128.xor (local.get $v0) (local.get $a0))))
            (v128.store offset=16 (local.get $dst)
              (v128.or
                (v128.andnot (i16x8.shl (i16x8.sub (local.get $a1) (local.get $rebias)) (i32.const 3)) (local.get $z1))
                (v128.xor (local.get $v1) (local.get $a1))))))
        (local.set $src (i32.add (local.get $src) (i32.const 32)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
        (br $next))))

  ;; F16 -> BF16. For normal halves: bf16 = sign | (((bits & 0x7fff) + 3 + lowest kept bit) >> 3) + (112 << 7),
  ;; rounding the 3 dropped mantissa bits to nearest even; zero keeps its sign. The fast-path test
  ;; is the one above with exponents 1..30: `bits & 0x7fff` minus (1 << 10) below 30 << 10.
  (func (export "f16_to_bf16") (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32) (local $v0 v128) (local $v1 v128) (local $a0 v128) (local $a1 v128) (local $z0 v128) (local $z1 v128)
    (local $magnitude v128) (local $low v128) (local $limit v128) (local $rebias v128) (local $three v128) (local $one v128)
    (local.set $magnitude (v128.const i16x8 0x7fff 0x7fff 0x7fff 0x7fff 0x7fff 0x7fff 0x7fff 0x7fff))
    (local.set $low (v128.const i16x8 0x0400 0x0400 0x0400 0x0400 0x0400 0x0400 0x0400 0x0400))
    (local.set $limit (v128.const i16x8 0x77ff 0x77ff 0x77ff 0x77ff 0x77ff 0x77ff 0x77ff 0x77ff))
    (local.set $rebias (v128.const i16x8 0x3800 0x3800 0x3800 0x3800 0x3800 0x3800 0x3800 0x3800))
    (local.set $three (v128.const i16x8 3 3 3 3 3 3 3 3))
    (local.set $one (v128.const i16x8 1 1 1 1 1 1 1 1))
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 1))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $v0 (v128.load (local.get $src)))
        (local.set $v1 (v128.load offset=16 (local.get $src)))
        (local.set $a0 (v128.and (local.get $v0) (local.get $magnitude)))
        (local.set $a1 (v128.and (local.get $v1) (local.get $magnitude)))
        (local.set $z0 (i16x8.eq (local.get $a0) (v128.const i64x2 0 0)))
        (local.set $z1 (i16x8.eq (local.get $a1) (v128.const i64x2 0 0)))
        (if
          (v128.any_true
            (i16x8.sub_sat_u
              (i16x8.max_u
                (v128.andnot (i16x8.sub (local.get $a0) (local.get $low)) (local.get $z0))
                (v128.andnot (i16x8.sub (local.get $a1) (local.get $low)) (local.get $z1)))
              (local.get $limit)))
          (then
            (v128.store (local.get $dst) (call $f16_bf16_general (local.get $v0)))
            (v128.store offset=16 (local.get $dst) (call $f16_bf16_general (local.get $v1))))
          (else
            (v128.store (local.get $dst)
              (v128.or
                (v128.andnot
                  (i16x8.add
                    (i16x8.shr_u
                      (i16x8.add
                        (i16x8.add (local.get $a0) (local.get $three))
                        (v128.and (i16x8.shr_u (local.get $a0) (i32.const 3)) (local.get $one)))
                      (i32.const 3))
                    (local.get $rebias))
                  (local.get $z0))
                (v128.xor (local.get $v0) (local.get $a0))))
            (v128.store offset=16 (local.get $dst)
              (v128.or
                (v128.andnot
                  (i16x8.add
                    (i16x8.shr_u
                      (i16x8.add
                        (i16x8.add (local.get $a1) (local.get $three))
                        (v128.and (i16x8.shr_u (local.get $a1) (i32.const 3)) (local.get $one)))
                      (i32.const 3))
                    (local.get $rebias))
                  (local.get $z1))
                (v128.xor (local.get $v1) (local.get $a1))))))
        (local.set $src (i32.add (local.get $src) (i32.const 32)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
        (br $next))))

  ;; ------------------------------------------------------------------------------------------
  ;; Float32 -> half, 16 elements per iteration: 64 bytes in, 32 out

  (func (export "f32_to_f16") (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32)
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (v128.store (local.get $dst)
          (i16x8.narrow_i32x4_u
            (call $f32_f16 (v128.load (local.get $src)))
            (call $f32_f16 (v128.load offset=16 (local.get $src)))))
        (v128.store offset=16 (local.get $dst)
          (i16x8.narrow_i32x4_u
            (call $f32_f16 (v128.load offset=32 (local.get $src)))
            (call $f32_f16 (v128.load offset=48 (local.get $src)))))
        (local.set $src (i32.add (local.get $src) (i32.const 64)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
        (br $next))))

  (func (export "f32_to_bf16") (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32)
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (v128.store (local.get $dst)
          (i16x8.narrow_i32x4_u
            (call $f32_bf16 (v128.load (local.get $src)))
            (call $f32_bf16 (v128.load offset=16 (local.get $src)))))
        (v128.store offset=16 (local.get $dst)
          (i16x8.narrow_i32x4_u
            (call $f32_bf16 (v128.load offset=32 (local.get $src)))
            (call $f32_bf16 (v128.load offset=48 (local.get $src)))))
        (local.set $src (i32.add (local.get $src) (i32.const 64)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
        (br $next))))

  ;; ------------------------------------------------------------------------------------------
  ;; Half -> float32, 16 elements per iteration: 32 bytes in, 64 out

  (func (export "f16_to_f32") (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32) (local $v v128)
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 1))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $v (v128.load (local.get $src)))
        (v128.store (local.get $dst) (call $f16_f32 (i32x4.extend_low_i16x8_u (local.get $v))))
        (v128.store offset=16 (local.get $dst) (call $f16_f32 (i32x4.extend_high_i16x8_u (local.get $v))))
        (local.set $v (v128.load offset=16 (local.get $src)))
        (v128.store offset=32 (local.get $dst) (call $f16_f32 (i32x4.extend_low_i16x8_u (local.get $v))))
        (v128.store offset=48 (local.get $dst) (call $f16_f32 (i32x4.extend_high_i16x8_u (local.get $v))))
        (local.set $src (i32.add (local.get $src) (i32.const 32)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 64)))
        (br $next))))

  ;; BF16 is the top half of float32: widening is a shift.
  (func (export "bf16_to_f32") (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32) (local $v v128)
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 1))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $v (v128.load (local.get $src)))
        (v128.store (local.get $dst) (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $v)) (i32.const 16)))
        (v128.store offset=16 (local.get $dst) (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $v)) (i32.const 16)))
        (local.set $v (v128.load offset=16 (local.get $src)))
        (v128.store offset=32 (local.get $dst) (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $v)) (i32.const 16)))
        (v128.store offset=48 (local.get $dst) (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $v)) (i32.const 16)))
        (local.set $src (i32.add (local.get $src) (i32.const 32)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 64)))
        (br $next))))
)
