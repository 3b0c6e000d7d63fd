// Runs pages_test.wasm (or pages_bench_*.wasm with its arguments) under node,
// as a cross-check of `weft run` (crates/weft-cli/tests/pages_guest.rs):
//   node crates/weft-pages/tests/c/run-node.mjs OUT_DIR/pages_test.wasm
//   node crates/weft-pages/tests/c/run-node.mjs OUT_DIR/pages_bench_weft.wasm gc first
// Exits with the program's exit code.
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';

const wasi = new WASI({ version: 'preview1', args: ['pages_test', ...process.argv.slice(3)], env: {}, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(process.argv[2]));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exit(wasi.start(instance));
