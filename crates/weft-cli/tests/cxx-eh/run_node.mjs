// Runs a wasm32-wasi command module under node's WASI, as a second engine to
// check build.sh's modules against the native output:
//   node [--experimental-wasm-exnref] run_node.mjs module.wasm
// Node 20 runs the legacy encoding; the exnref encoding needs a node whose V8
// has exnref (node 22 with --experimental-wasm-exnref, or node >= 24).
import { readFileSync } from 'node:fs';
import { WASI } from 'node:wasi';
import process from 'node:process';

const wasi = new WASI({ version: 'preview1', args: [process.argv[2]], env: {}, returnOnExit: true });
const module = await WebAssembly.compile(readFileSync(process.argv[2]));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
