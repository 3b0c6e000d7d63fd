// Interim runner for pages_test.wasm until `weft run` supports WASI:
//   node crates/weft-pages/tests/c/run-node.mjs OUT_DIR/pages_test.wasm
// Exits with the program's exit code.
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';

const wasi = new WASI({ version: 'preview1', args: ['pages_test'], env: {}, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(process.argv[2]));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exit(wasi.start(instance));
