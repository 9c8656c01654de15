// What this binary is: the project version, the git commit it was configured from ("unknown"
// outside a git checkout, "-dirty" when tracked files differed) and when it was configured.
#pragma once

#include <string_view>

namespace omnigate {

struct BuildInfo {
  std::string_view version;
  std::string_view commit;
  std::string_view date;  // RFC 3339, UTC
};

const BuildInfo& build_info();

}  // namespace omnigate
