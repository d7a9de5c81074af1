# Makefile - the two commands of the README, and their parts.
#   make demo   installs what is missing, builds, and runs the three steps on examples/ data
#   make test   installs what is missing, builds, and runs every test, then the unit and CLI tests
#               again in an AddressSanitizer + UndefinedBehaviorSanitizer build
# Builds go to build/ and build-asan/; `make bench` installs what the benchmarks need, builds, and
# runs the benchmarks.

BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
# Debian packages the build, the tests and the demo need.
DEB_PACKAGES = build-essential cmake pkg-config jq libxml2-utils \
               libjansson-dev libyaml-dev libcmocka-dev libopenmpi-dev openmpi-bin \
               python3-dev python3-numpy python3-torch python3-pytest
# And what only the benchmarks need: bench_collect's baseline runs upstream's Python code in an
# embedded CPython with numpy, bench_pair_optimum.sh runs CBC (the tests never need these).
BENCH_DEB_PACKAGES = libpython3-dev python3-numpy coinor-cbc

.PHONY: all deps build asan demo test test-asan bench-deps bench install clean

all: build

# Installs the missing Debian packages (apt-get as root, else through sudo).
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DEPLB_SANITIZE=ON -DEPLB_BUILD_BENCH=OFF >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)

demo: build
	bash examples/demo.sh $(BUILD)

test: build asan
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS) -L 'unit|cli'

# Installs the benchmarks' packages, the way deps installs the others.
bench-deps:
	$(MAKE) --no-print-directory deps DEB_PACKAGES="$(BENCH_DEB_PACKAGES)"

# The packages first, so that the build's configure finds CPython.
bench: bench-deps
	$(MAKE) --no-print-directory build
	bash bench/run_all.sh $(BUILD)

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
