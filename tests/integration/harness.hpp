// Moved to tests/support/ (the one test-support library); kept so older includes still build.
#pragma once

#include "tests/support/harness.hpp"
