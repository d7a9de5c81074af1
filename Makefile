# Makefile - the two commands of the README, and their parts.
#   make demo   installs what is missing, builds, and runs the three steps on examples/ data
#   make test   installs what is missing, builds, and runs every test, then the unit, CLI and MPI
#               tests again in an AddressSanitizer + UndefinedBehaviorSanitizer build
#   make fuzz   runs each libFuzzer target FUZZ_SECONDS (default 60) in build-fuzz/ (clang)
#   make lint   clang-tidy's bugprone-* and clang-analyzer-* checks on src/ and programs/
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
# The tests run the plan and report CLI tests once under valgrind; cli_kill_rank kills root the
# moment its temp file is created (inotifywait), which polling misses on a loaded machine.
DEB_PACKAGES += valgrind inotify-tools
# What `make fuzz` (clang's libFuzzer) and `make lint` (clang-tidy) need besides.
FUZZ_DEB_PACKAGES = clang libclang-rt-dev clang-tidy
FUZZ_BUILD ?= build-fuzz
LINT_BUILD ?= build-lint
FUZZ_SECONDS ?= 60

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
	  ctest --output-on-failure -j $(JOBS) -L 'unit|cli|mpi'

# Installs the benchmarks' packages, the way deps installs the others.
bench-deps:
	$(MAKE) --no-print-directory deps DEB_PACKAGES="$(BENCH_DEB_PACKAGES)"

# The packages first, so that the build's configure finds CPython.
bench: bench-deps
	$(MAKE) --no-print-directory build
	bash bench/run_all.sh $(BUILD)

.PHONY: fuzz-deps fuzz lint

fuzz-deps:
	$(MAKE) --no-print-directory deps DEB_PACKAGES="$(FUZZ_DEB_PACKAGES)"

# Builds the fuzz targets with clang (-DEPLB_FUZZ=ON) and runs each for FUZZ_SECONDS from its
# seed corpus (tests/fuzz/run_fuzz.sh prints the executions and findings of each target).
fuzz: deps fuzz-deps
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DEPLB_FUZZ=ON -DEPLB_BUILD_BENCH=OFF >/dev/null
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_loads fuzz_map fuzz_config fuzz_plan
	bash tests/fuzz/run_fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# clang-tidy with .clang-tidy's checks on the library and the program; any finding fails.
lint: deps fuzz-deps
	cmake -S . -B $(LINT_BUILD) -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DEPLB_BUILD_TESTS=OFF \
	  -DEPLB_BUILD_BENCH=OFF >/dev/null
	clang-tidy -p $(LINT_BUILD) --quiet $(shell find src -name "*.c" | sort) programs/*.c \
	  2>$(LINT_BUILD)/clang-tidy.stderr || { cat $(LINT_BUILD)/clang-tidy.stderr; exit 1; }
	@echo "lint: clang-tidy clean on src/ and programs/"

clean: clean-hardening
.PHONY: clean-hardening
clean-hardening:
	rm -rf $(FUZZ_BUILD) $(LINT_BUILD)

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
