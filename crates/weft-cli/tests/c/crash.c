/* crash: traps through abort() (a Wasm `unreachable`). */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) static void fail(void) {
    abort();
}

int main(void) {
    puts("before");
    fflush(stdout);
    fail();
    return 0;
}
