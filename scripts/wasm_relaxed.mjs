// wasm_relaxed.mjs: write the relaxed-SIMD instructions into an emscripten build.
//
//     node scripts/wasm_relaxed.mjs build/web/pocketlm-relaxed.mjs   (patches the .wasm beside it)
//
// Why: the toolchain (Debian's emscripten 3.1.6, LLVM 14, binaryen 108) has no relaxed dot
// product, and its -mrelaxed-simd emits the prototype opcodes, which engines no longer accept. So
// the C code (src/matmul_wasm.c) calls marker functions, one per instruction, declared
// __attribute__((const)) and defined in JS only as stubs that abort (scripts/wasm_relaxed_lib.js);
// the linked module imports them. This script finds those imports (emscripten minifies import
// names: the .mjs glue maps each minified name to the stub's name, `"b":_plm_relaxed_...`), decodes
// every function body, and replaces each `call marker` by the instruction with the final opcode of
// the relaxed-SIMD spec (0xfd prefix). The marker's signature is the instruction's (operands in the
// same order, one v128 result), so the stack is the same before and after. The imports stay (never
// called); function indices do not move. Any other relaxed opcode, or an opcode this decoder does
// not know, stops the build: nothing is copied unchecked.
// Exit status: 0 when at least one call was replaced and none is left.
import fs from 'node:fs';

// marker stub name (without the leading _) -> the instruction's opcode after the 0xfd prefix
const MARKERS = {
  plm_relaxed_dot_i8x16_i7x16_s: 0x112,     // i16x8.relaxed_dot_i8x16_i7x16_s
  plm_relaxed_dot_i8x16_i7x16_add_s: 0x113, // i32x4.relaxed_dot_i8x16_i7x16_add_s
  plm_relaxed_madd_f32x4: 0x105,            // f32x4.relaxed_madd
};

class Reader {
  constructor(buf, pos = 0) { this.b = buf; this.p = pos; }
  byte() {
    if (this.p >= this.b.length) throw new Error('wasm_relaxed: unexpected end of module');
    return this.b[this.p++];
  }
  u32() { // unsigned LEB128
    let r = 0, shift = 0, x;
    do { x = this.byte(); r += (x & 0x7f) * 2 ** shift; shift += 7; } while (x & 0x80);
    return r;
  }
  skipLeb() { while (this.byte() & 0x80); }
  skip(n) { this.p += n; }
  name() {
    const n = this.u32(), s = new TextDecoder().decode(this.b.subarray(this.p, this.p + n));
    this.p += n;
    return s;
  }
}

function leb(n) {
  const out = [];
  do { let x = n & 0x7f; n >>>= 7; if (n) x |= 0x80; out.push(x); } while (n);
  return out;
}

// Holes of the SIMD128 opcode space below 0x100 (where the prototype relaxed opcodes were)
const SIMD_HOLES = new Set([0x9a, 0xa2, 0xa5, 0xa6, 0xaf, 0xb0, 0xb2, 0xb3, 0xb4, 0xbb, 0xc2, 0xc5,
  0xc6, 0xcf, 0xd0, 0xd2, 0xd3, 0xd4, 0xe2, 0xee]);

function memarg(r) {
  const align = r.u32();
  if (align & 0x40) r.u32(); // multi-memory: a memory index follows
  r.u32();                   // offset
}

// skipInstr: r is at an opcode; moves past it and its immediates. Returns the function index when
// it is a call, else -1.
function skipInstr(r) {
  const op = r.byte();
  switch (op) {
    case 0x02: case 0x03: case 0x04: case 0x06: r.skipLeb(); return -1; // block type (s33)
    case 0x07: case 0x08: case 0x09: case 0x0c: case 0x0d: case 0x18: r.u32(); return -1;
    case 0x0e: { const n = r.u32(); for (let i = 0; i <= n; i++) r.u32(); return -1; }
    case 0x10: return r.u32();
    case 0x12: r.u32(); return -1;
    case 0x11: case 0x13: r.u32(); r.u32(); return -1;
    case 0x1c: { const n = r.u32(); for (let i = 0; i < n; i++) r.skipLeb(); return -1; }
    case 0x20: case 0x21: case 0x22: case 0x23: case 0x24: case 0x25: case 0x26: r.u32(); return -1;
    case 0x3f: case 0x40: r.u32(); return -1;
    case 0x41: case 0x42: r.skipLeb(); return -1;
    case 0x43: r.skip(4); return -1;
    case 0x44: r.skip(8); return -1;
    case 0xd0: r.skipLeb(); return -1;
    case 0x28: case 0x29: case 0x2a: case 0x2b: case 0x2c: case 0x2d: case 0x2e: case 0x2f:
    case 0x30: case 0x31: case 0x32: case 0x33: case 0x34: case 0x35: case 0x36: case 0x37:
    case 0x38: case 0x39: case 0x3a: case 0x3b: case 0x3c: case 0x3d: case 0x3e: // loads, stores
      memarg(r);
      return -1;
    case 0xd2: r.u32(); return -1;
    case 0xfc: {
      const sub = r.u32();
      if (sub <= 7) return -1;
      if ([9, 11, 13, 15, 16, 17].includes(sub)) { r.u32(); return -1; }
      if ([8, 10, 12, 14].includes(sub)) { r.u32(); r.u32(); return -1; }
      throw new Error(`wasm_relaxed: unknown opcode 0xfc ${sub}`);
    }
    case 0xfd: {
      const sub = r.u32();
      if (sub <= 0x0b || sub === 0x5c || sub === 0x5d) memarg(r);
      else if (sub === 0x0c || sub === 0x0d) r.skip(16);
      else if (sub >= 0x15 && sub <= 0x22) r.skip(1);
      else if (sub >= 0x54 && sub <= 0x5b) { memarg(r); r.skip(1); }
      else if (sub >= 0x100 && sub <= 0x113) { /* a final relaxed opcode: no immediates */ }
      else if (sub > 0xff || SIMD_HOLES.has(sub))
        throw new Error(`wasm_relaxed: SIMD opcode 0x${sub.toString(16)} is neither SIMD128 nor ` +
                        'final relaxed SIMD (a prototype relaxed opcode from -mrelaxed-simd?)');
      return -1;
    }
    case 0xfe: {
      const sub = r.u32();
      if (sub === 0x03) r.skip(1);
      else if (sub <= 0x02 || (sub >= 0x10 && sub <= 0x4e)) memarg(r);
      else throw new Error(`wasm_relaxed: unknown opcode 0xfe ${sub}`);
      return -1;
    }
    default:
      // no immediates: control (unreachable, nop, else, end, return, catch_all, drop, select),
      // every numeric operator 0x45-0xc4, ref.is_null
      if (op <= 0x01 || op === 0x05 || op === 0x0b || op === 0x0f || op === 0x19 || op === 0x1a ||
          op === 0x1b || (op >= 0x45 && op <= 0xc4) || op === 0xd1) return -1;
      throw new Error(`wasm_relaxed: unknown opcode 0x${op.toString(16)}`);
  }
}

// patch: the module bytes with every call of a function index in `ops` (index -> opcode)
// replaced by its instruction; returns { bytes, counts (opcode -> replaced) }.
function patch(wasm, ops) {
  const r = new Reader(wasm, 8);
  const out = [wasm.subarray(0, 8)];
  const counts = new Map();
  while (r.p < wasm.length) {
    const id = r.byte(), size = r.u32(), start = r.p, end = start + size;
    if (id !== 10) {
      out.push(wasm.subarray(start - 1 - leb(size).length, end));
      r.p = end;
      continue;
    }
    const bodies = [];
    const n = r.u32();
    for (let f = 0; f < n; f++) {
      const bsize = r.u32(), bstart = r.p, bend = bstart + bsize;
      const nloc = r.u32();
      for (let i = 0; i < nloc; i++) { r.u32(); r.skipLeb(); }
      const parts = [];
      let copied = bstart;
      while (r.p < bend) {
        const at = r.p, callee = skipInstr(r);
        if (callee >= 0 && ops.has(callee)) {
          const code = ops.get(callee);
          parts.push(wasm.subarray(copied, at), Uint8Array.from([0xfd, ...leb(code)]));
          copied = r.p;
          counts.set(code, (counts.get(code) || 0) + 1);
        }
      }
      if (r.p !== bend) throw new Error(`wasm_relaxed: function ${f}: decoding overran its body`);
      parts.push(wasm.subarray(copied, bend));
      const len = parts.reduce((s, p) => s + p.length, 0);
      bodies.push(Uint8Array.from(leb(len)), ...parts);
    }
    if (r.p !== end) throw new Error('wasm_relaxed: code section size mismatch');
    const body = [Uint8Array.from(leb(n)), ...bodies];
    const len = body.reduce((s, p) => s + p.length, 0);
    out.push(Uint8Array.from([10, ...leb(len)]), ...body);
  }
  const bytes = new Uint8Array(out.reduce((s, p) => s + p.length, 0));
  let off = 0;
  for (const p of out) { bytes.set(p, off); off += p.length; }
  return { bytes, counts };
}

// markerImports: function index -> opcode of the imports that are markers. glue: the .mjs/.js
// text, which names each import's JS function (`"b":_plm_relaxed_dot_...`).
function markerImports(wasm, glue) {
  const byImportName = new Map();
  for (const m of glue.matchAll(/["']?([\w$]+)["']?\s*:\s*_(plm_relaxed_\w+)/g)) {
    if (!(m[2] in MARKERS)) throw new Error(`wasm_relaxed: unknown marker _${m[2]}`);
    byImportName.set(m[1], MARKERS[m[2]]);
  }
  if (!byImportName.size) throw new Error('wasm_relaxed: the glue names no _plm_relaxed_ marker');
  const r = new Reader(wasm, 8);
  const ops = new Map();
  while (r.p < wasm.length) {
    const id = r.byte(), size = r.u32(), end = r.p + size;
    if (id === 2) {
      let func = 0;
      for (let i = 0, n = r.u32(); i < n; i++) {
        r.name();
        const field = r.name(), kind = r.byte();
        if (kind === 0) { // function: type index
          r.u32();
          if (byImportName.has(field)) ops.set(func, byImportName.get(field));
          func++;
        } else if (kind === 1 || kind === 2) { // table (its element type first), memory: limits
          if (kind === 1) r.byte();
          const flags = r.u32();
          r.u32();
          if (flags & 1) r.u32();
        } else if (kind === 3) { r.byte(); r.byte(); } // global: type, mutability
        else if (kind === 4) { r.byte(); r.u32(); }    // tag
        else throw new Error(`wasm_relaxed: import kind ${kind}`);
      }
    }
    r.p = end;
  }
  if (ops.size !== byImportName.size)
    throw new Error('wasm_relaxed: a marker of the glue is not imported by the module');
  return ops;
}

const glueFile = process.argv[2];
if (!glueFile || !/\.(mjs|cjs|js)$/.test(glueFile)) {
  console.error('usage: node scripts/wasm_relaxed.mjs BUILD.mjs|.cjs   (patches the .wasm beside it)');
  process.exit(2);
}
const wasmFile = glueFile.replace(/\.(mjs|cjs|js)$/, '.wasm');
try {
  const wasm = new Uint8Array(fs.readFileSync(wasmFile));
  const ops = markerImports(wasm, fs.readFileSync(glueFile, 'utf8'));
  const { bytes, counts } = patch(wasm, ops);
  const left = patch(bytes, ops).counts; // the patched module, decoded again: no marker call left
  if (!counts.size) throw new Error('wasm_relaxed: no marker call found');
  if (left.size) throw new Error('wasm_relaxed: marker calls left after the rewrite');
  fs.writeFileSync(wasmFile, bytes);
  const what = [...counts].map(([op, n]) => `0x${op.toString(16)} x${n}`).join(', ');
  console.log(`wasm_relaxed: ${wasmFile}: ${what}`);
} catch (e) {
  console.error(e.message);
  process.exit(1);
}
