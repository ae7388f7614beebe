{
  "targets": [
    {
      "target_name": "badexpert",
      "sources": [
        "src/addon.cc",
        "src/handles.cc",
        "src/creation.cc",
        "src/ops.cc",
        "src/nn_ops.cc",
        "src/autograd.cc",
        "src/runtime.cc",
        "src/jit.cc",
        "src/jit_graph.cc"
      ],
      "include_dirs": [
        "<!@(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node libtorch-paths.cjs include)"
      ],
      "libraries": ["<!@(node libtorch-paths.cjs libs)"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O2", "-fexceptions", "-frtti", "-Wno-unused-parameter", "-Wno-deprecated-declarations"]
    }
  ]
}
