// wasm_relaxed_lib.js: an emscripten --js-library for the relaxed-SIMD builds. The relaxed
// instructions of src/matmul_wasm.c are calls of these marker functions in the linked module, and
// scripts/wasm_relaxed.mjs replaces every such call by the instruction itself. So these bodies run
// only in a module that was not patched: they stop it instead of computing something else.
mergeInto(LibraryManager.library, {
  plm_relaxed_dot_i8x16_i7x16_s: function () { abort('pocketlm: unpatched relaxed-SIMD marker (run scripts/wasm_relaxed.mjs)'); },
  plm_relaxed_dot_i8x16_i7x16_add_s: function () { abort('pocketlm: unpatched relaxed-SIMD marker (run scripts/wasm_relaxed.mjs)'); },
  plm_relaxed_madd_f32x4: function () { abort('pocketlm: unpatched relaxed-SIMD marker (run scripts/wasm_relaxed.mjs)'); },
});
