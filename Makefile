# omnigate: `make run` to try it, `make test` to prove it. Both install what is missing first.
MAKEFLAGS += --no-print-directory
BUILD_DIR ?= build
CONFIG ?= config/omnigate.example.yaml
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX ?= /usr/local

.PHONY: all deps configure build run install test docker-check bench format clean

all: build

deps:
	@scripts/install-deps.sh

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

configure: deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release >/dev/null

run: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS) --target omnigate
	@scripts/run-local.sh $(BUILD_DIR)/omnigate $(CONFIG)

# The binary, the example config and the systemd unit under $(PREFIX) (no root needed for a
# prefix you can write: make install PREFIX=/tmp/omnigate). Builds only the binary.
install: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS) --target omnigate
	@cmake --install $(BUILD_DIR) --prefix $(PREFIX)

test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) -LE docker_build

# The Dockerfile's build stage run as written in a clean copy (a second full build, so not part
# of `make test`); the rest of the Docker checks are in `make test`.
docker-check: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -L docker_build

bench: build
	@bench/run.sh

format:
	@clang-format -i gateway/*.cpp gateway/*.hpp connectors/*/*.cpp connectors/*/*.hpp tests/*/*.cpp tests/*/*/*.cpp tests/*/*.hpp

clean:
	rm -rf $(BUILD_DIR)
