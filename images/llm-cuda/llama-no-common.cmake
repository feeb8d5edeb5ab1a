# Included by CMake right after vendor/llama.cpp's project() call
# (-DCMAKE_PROJECT_llama.cpp_INCLUDE=...), i.e. after llama-cpp-python's
# CMakeLists.txt has forced LLAMA_BUILD_COMMON=ON and before llama.cpp adds
# common/. llama-cpp-python loads only libllama, libggml* (and libmtmd) through
# ctypes; libllama-common is never installed into the wheel, and its 52
# JSON-heavy sources are about 40 % of the objects compiled. Skipping it
# shortens the slow build step and changes nothing in the wheel's libraries.
set(LLAMA_BUILD_COMMON OFF CACHE BOOL "llama: build common utils library" FORCE)
