# vlm: the targets are the interface (see README.md).
#   make test      install what is missing, build, run every test suite
#   make check     the inner loop: release build, CTest suites, integration (tests/README.md)
#   make run       install, build, start nginx + Redis + vlmd (DETACH=1: return once ready)
#   make stop      stop what make run DETACH=1 started
#   make bench     performance tables on this machine
#   make fixtures  regenerate golden fixtures with pinned transformers (network: PyPI)

BUILD    ?= build
JOBS     ?= $(shell nproc)
CMAKE    ?= cmake
GEN      := -G Ninja
RELEASE  := $(BUILD)/release
SANITIZE := $(BUILD)/sanitize
BIN      := $(BUILD)/bin

.PHONY: all deps build build-sanitize test check run stop bench fixtures clean

all: build

deps:
	@sh scripts/install-deps.sh

$(RELEASE)/build.ninja: CMakeLists.txt
	@$(CMAKE) -S . -B $(RELEASE) $(GEN) -DCMAKE_BUILD_TYPE=Release \
	    -DVLM_BIN_DIR=$(abspath $(BIN)) >/dev/null

$(SANITIZE)/build.ninja: CMakeLists.txt
	@$(CMAKE) -S . -B $(SANITIZE) $(GEN) -DCMAKE_BUILD_TYPE=Debug -DVLM_SANITIZE=ON \
	    -DVLM_BIN_DIR=$(abspath $(SANITIZE)/bin) >/dev/null

build: deps $(RELEASE)/build.ninja
	@ninja -C $(RELEASE) -j $(JOBS)

build-sanitize: deps $(SANITIZE)/build.ninja
	@ninja -C $(SANITIZE) -j $(JOBS)

test: deps
	@sh scripts/run-tests.sh test

check: deps
	@sh scripts/run-tests.sh check

run: build
	@sh scripts/run-local.sh

stop:
	@sh scripts/stop-local.sh

bench: build
	@sh scripts/bench.sh

fixtures:
	@sh tests/reference/make-fixtures.sh

clean:
	rm -rf $(BUILD)
