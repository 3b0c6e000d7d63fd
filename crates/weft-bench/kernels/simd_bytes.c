/* An integer kernel written with explicit SIMD (wasm_simd128.h in the wasm
 * build, the same arithmetic lane by lane natively): over a 1 MiB buffer,
 * count the bytes equal to each of 16 values and sum the bytes in 16-bit
 * lanes, repeated. Prints the counts and the sum. */
#include <stdint.h>
#include <stdio.h>
#include "bench.h"

#define SIZE (1 << 20)
#define ROUNDS 8

static uint8_t buf[SIZE];

#ifdef __wasm_simd128__
#include <wasm_simd128.h>
static uint64_t count_equal(uint8_t value) {
    v128_t needle = wasm_i8x16_splat((int8_t)value);
    uint64_t count = 0;
    for (int i = 0; i < SIZE; i += 16) {
        v128_t eq = wasm_i8x16_eq(wasm_v128_load(buf + i), needle);
        count += __builtin_popcount(wasm_i8x16_bitmask(eq));
    }
    return count;
}
static uint64_t byte_sum(void) {
    v128_t acc = wasm_i32x4_splat(0);
    for (int i = 0; i < SIZE; i += 16) {
        v128_t v = wasm_v128_load(buf + i);
        v128_t pairs = wasm_u16x8_extadd_pairwise_u8x16(v);
        acc = wasm_i32x4_add(acc, wasm_u32x4_extadd_pairwise_u16x8(pairs));
    }
    return (uint64_t)wasm_u32x4_extract_lane(acc, 0) + wasm_u32x4_extract_lane(acc, 1) + wasm_u32x4_extract_lane(acc, 2) +
           wasm_u32x4_extract_lane(acc, 3);
}
#else
static uint64_t count_equal(uint8_t value) {
    uint64_t count = 0;
    for (int i = 0; i < SIZE; i++) count += buf[i] == value;
    return count;
}
static uint64_t byte_sum(void) {
    uint64_t sum = 0;
    for (int i = 0; i < SIZE; i++) sum += buf[i];
    return sum;
}
#endif

int main(void) {
    uint32_t x = 12345;
    for (int i = 0; i < SIZE; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    uint64_t counts[16] = {0}, sum = 0;
    bench_start();
    for (int r = 0; r < ROUNDS; r++) {
        for (int v = 0; v < 16; v++) counts[v] += count_equal((uint8_t)(v * 16 + r));
        sum += byte_sum();
        buf[r] ^= (uint8_t)sum;
    }
    bench_end();
    printf("counts");
    for (int v = 0; v < 16; v++) printf(" %llu", (unsigned long long)counts[v]);
    printf("\nsum %llu\n", (unsigned long long)sum);
    return 0;
}
