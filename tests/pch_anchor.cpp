// The one source of omnigate_test_pch (tests/CMakeLists.txt): the target exists to build the
// precompiled Catch2 and nlohmann/json headers that every test executable reuses.
#include <catch2/catch.hpp>
