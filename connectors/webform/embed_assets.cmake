# Writes a C++ file holding the web form's static assets, so the binary (and the Docker image)
# serves them without files next to it. Included by CMakeLists.txt with OUT, JS and DEMO set.
file(READ "${JS}" js_content)
file(READ "${DEMO}" demo_content)
file(WRITE "${OUT}" "// Generated from connectors/webform/static by embed_assets.cmake; do not edit.\n"
  "#include <string_view>\nnamespace omnigate::webform {\n"
  "extern const std::string_view kEmbedScript = R\"omnigate_asset(${js_content})omnigate_asset\";\n"
  "extern const std::string_view kDemoPage = R\"omnigate_asset(${demo_content})omnigate_asset\";\n"
  "}  // namespace omnigate::webform\n")
