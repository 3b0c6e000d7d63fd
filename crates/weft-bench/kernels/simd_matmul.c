/* A float kernel the compiler vectorizes with -msimd128: 128x128 matrix
 * products, repeated. Prints a checksum of the result. */
#include <stdio.h>
#include "bench.h"

#define N 128
#define ROUNDS 40

static float a[N][N], b[N][N], c[N][N];

int main(void) {
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            a[i][j] = (float)((i * 7 + j * 3) % 17) / 16.0f;
            b[i][j] = (float)((i * 5 + j * 11) % 13) / 12.0f;
        }
    bench_start();
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < N; i++) {
            for (int j = 0; j < N; j++) c[i][j] = 0.0f;
            for (int k = 0; k < N; k++) {
                float aik = a[i][k];
                for (int j = 0; j < N; j++) c[i][j] += aik * b[k][j];
            }
        }
        /* Feed the result back so that no round can be skipped. */
        a[r % N][r % N] = c[(r * 3) % N][(r * 5) % N] / (float)N;
    }
    bench_end();
    double sum = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) sum += c[i][j];
    printf("matmul checksum %.3f\n", sum);
    return 0;
}
