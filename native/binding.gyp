{
  "variables": {
    "sat_cflags": ["-O3", "-std=gnu11", "-fPIC", "-ffp-contract=off", "-fno-math-errno", "-Wall", "-Wextra", "-Wno-unused-function", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]
  },
  "targets": [
    {
      "target_name": "sat_kernels_avx512",
      "type": "static_library",
      "sources": ["gemm.c", "ops.c"],
      "defines": ["SAT_ISA=512"],
      "cflags": ["<@(sat_cflags)", "-mavx512f", "-mavx2", "-mfma"],
      "xcode_settings": { "OTHER_CFLAGS": ["<@(sat_cflags)", "-mavx512f", "-mavx2", "-mfma"] }
    },
    {
      "target_name": "sat_kernels_avx2",
      "type": "static_library",
      "sources": ["gemm.c", "ops.c"],
      "defines": ["SAT_ISA=256"],
      "cflags": ["<@(sat_cflags)", "-mavx2", "-mfma"],
      "xcode_settings": { "OTHER_CFLAGS": ["<@(sat_cflags)", "-mavx2", "-mfma"] }
    },
    {
      "target_name": "sat_native",
      "sources": ["addon.c", "pool.c"],
      "dependencies": ["sat_kernels_avx512", "sat_kernels_avx2"],
      "cflags": ["<@(sat_cflags)"],
      "libraries": ["-lpthread", "-lm"],
      "xcode_settings": { "OTHER_CFLAGS": ["<@(sat_cflags)"] }
    }
  ]
}
