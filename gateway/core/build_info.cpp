#include "gateway/core/build_info.hpp"

#include "omnigate_build_info.h"  // generated (gateway/core/CMakeLists.txt)

namespace omnigate {

const BuildInfo& build_info() {
  static const BuildInfo info{OMNIGATE_VERSION, OMNIGATE_GIT_COMMIT, OMNIGATE_BUILD_DATE};
  return info;
}

}  // namespace omnigate
