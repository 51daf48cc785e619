#!/usr/bin/env bash
# Installs llama-cpp-python into .venv, built from source for this CPU (GGML_NATIVE: -march=native, so
# AVX-512 / AVX512-BF16 / VNNI where the CPU has them), for the benchmark's llama.cpp rows. Only the library
# the bindings load is compiled (no tools, examples, server, multimodal or common library), with every
# core, at low priority. The wheel is kept in ~/.cache/baichuan-chat/wheels and reused on the same CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
[ -x .venv/bin/python ] || scripts/setup_env.sh --test
cache=${XDG_CACHE_HOME:-$HOME/.cache}/baichuan-chat/wheels
# A native build only suits the CPU it was built on: key the cached wheel on the CPU model and flags.
cpu=$( (grep -m1 '^model name' /proc/cpuinfo; grep -m1 '^flags' /proc/cpuinfo) 2>/dev/null | cksum | cut -d' ' -f1)
dir="$cache/llama-cpp-python-$VERSION-native-$cpu"
if ! ls "$dir"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  mkdir -p "$dir"
  jobs=$(nproc 2>/dev/null || echo 2)
  echo "building llama-cpp-python $VERSION for this CPU ($jobs jobs; a few minutes) …"
  started=$(date +%s)
  CMAKE_BUILD_PARALLEL_LEVEL=$jobs \
  CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_OPENMP=ON -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF \
-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
-DLLAMA_CURL=OFF -DCMAKE_PROJECT_llama.cpp_INCLUDE=$PWD/scripts/llamacpp_lib_only.cmake" \
    nice -n 19 .venv/bin/python -m pip wheel ${VERBOSE:+-v} --no-cache-dir --no-deps --no-binary llama-cpp-python \
      -w "$dir" "llama-cpp-python==$VERSION"
  echo "built in $(( $(date +%s) - started )) s"
fi
.venv/bin/python -m pip install -q --force-reinstall --no-deps "$dir"/llama_cpp_python-*.whl
.venv/bin/python -m pip install -q "typing-extensions>=4.5.0" "numpy>=1.20.0" "diskcache>=5.6.1" "jinja2>=2.11.3"
.venv/bin/python -c "import llama_cpp; print('llama_cpp', llama_cpp.__version__); print(llama_cpp.llama_print_system_info().decode())"
