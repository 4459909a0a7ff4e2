// Catch2's main. CATCH_CONFIG_ENABLE_BENCHMARKING comes from tests/CMakeLists.txt,
// so that every test file is compiled with the same Catch configuration.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
