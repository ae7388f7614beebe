// Prints the include dirs or linker flags for libtorch, read by binding.gyp.
// Default: Debian's libtorch-dev. BADEXPERT_LIBTORCH=/prefix picks another build
// (e.g. an official CUDA libtorch); its CUDA library is linked when present so that
// the CUDA backend registers itself.
const fs = require("node:fs");
const path = require("node:path");

const prefix = process.env.BADEXPERT_LIBTORCH;
const what = process.argv[2];

if (!prefix) {
  if (what === "include") console.log("/usr/include /usr/include/torch/csrc/api/include");
  else console.log("-ltorch -ltorch_cpu -lc10");
} else {
  const lib = path.join(prefix, "lib");
  if (what === "include") {
    console.log([path.join(prefix, "include"), path.join(prefix, "include/torch/csrc/api/include")].join(" "));
  } else {
    const flags = [`-L${lib}`, `-Wl,-rpath,${lib}`, "-Wl,--no-as-needed", "-ltorch", "-ltorch_cpu", "-lc10"];
    if (fs.existsSync(path.join(lib, "libtorch_cuda.so"))) flags.push("-ltorch_cuda", "-lc10_cuda");
    flags.push("-Wl,--as-needed");
    console.log(flags.join(" "));
  }
}
