/* The sightglass convention: the measured span lies between bench_start()
 * and bench_end(), imported from the host's "bench" module. Native builds
 * (which make the expected output) have no-op versions. */
#ifdef __wasm__
__attribute__((import_module("bench"), import_name("start"))) void bench_start(void);
__attribute__((import_module("bench"), import_name("end"))) void bench_end(void);
#else
static void bench_start(void) {}
static void bench_end(void) {}
#endif
