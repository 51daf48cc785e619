# Included at llama.cpp's project() call (CMAKE_PROJECT_llama.cpp_INCLUDE) by scripts/install_llamacpp.sh.
# llama-cpp-python's CMakeLists forces LLAMA_BUILD_COMMON ON, which compiles llama.cpp's `common` library
# (1.4 MB of template-heavy C++ plus cpp-httplib) that the Python bindings never load; turn it off again
# here, so only ggml, ggml-cpu and libllama are compiled.
set(LLAMA_BUILD_COMMON OFF CACHE BOOL "llama: build common utils library" FORCE)
