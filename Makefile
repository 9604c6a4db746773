# TelemetryFlow for Swift — set-up, build, demo, tests and benchmarks.
# `make demo` and `make test` install what a fresh Debian machine lacks (with apt-get and pip).

SWIFT ?= swift
PYTHON ?= python3
APT_PACKAGES := liblmdb-dev libcurl4-openssl-dev libnghttp2-dev zlib1g-dev pkg-config
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)

.PHONY: deps test-deps build demo test test-sanitizers fuzz bench bench-peers clean

# The durability suites (fault injection, damage, full disk, I/O errors) keep both cores busy with child processes;
# they run after the others so that the export suites' timing is not starved by them. The crash-cut span test (a
# child killed inside open spans) and the quick-start test (the README's quick start built as a package of its own) run
# there too.
DURABILITY_SUITES := RecoveryFaultTests|DamageSuiteTests|IOFaultTests|FullDiskTests|DurabilityFindingsTests|CrashCutSpanTests|QuickStartTests
FUZZ_CASES ?= 3000
FUZZ_SECONDS ?= 120

deps:
	@if ! pkg-config --exists lmdb libcurl zlib 2>/dev/null || ! dpkg -s libnghttp2-dev >/dev/null 2>&1; then \
		echo "installing $(APT_PACKAGES)"; \
		$(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); \
	fi

test-deps:
	@$(PYTHON) -c "import opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc, opentelemetry.trace, google.protobuf, grpc, cryptography" 2>/dev/null || \
		$(PYTHON) -m pip install -q --disable-pip-version-check opentelemetry-proto opentelemetry-api protobuf grpcio cryptography

build: deps
	$(SWIFT) build

demo: build
	.build/debug/tflow demo $(DEMO_ARGS)

# The whole suite on the installed libcurl, then the transport and export suites again on bookworm-backports'
# libcurl 8 (downloaded, not installed) so that both HTTP/2 connection paths are tested (Docs/Export.md).
test: deps test-deps
	$(SWIFT) test --skip '$(DURABILITY_SUITES)'
	$(SWIFT) test --skip-build --filter '$(DURABILITY_SUITES)'
	@if lib=$$(bash Tests/Support/fetch-libcurl8.sh .build/libcurl8); then \
		echo "== transport and export suites again with $$(ls .build/libcurl8/download)"; \
		LD_LIBRARY_PATH=$$lib $(SWIFT) test --skip-build --filter 'HTTP2ConnectionTests|TLSTests|ExportIntegrationTests|DemoExportTests'; \
	else \
		echo "== note: libcurl 8 could not be fetched (see above); only the installed libcurl's HTTP/2 path was tested"; \
	fi

# The storage, transport and export suites under ThreadSanitizer, then AddressSanitizer, each in a build folder of
# its own. A sanitizer report fails the run (TSan and ASan exit non-zero after reporting). The durability suites
# (child processes killed by the hundred) and the SIGKILL crash test stay in `make test`: they test files on disk,
# not memory, and would take most of an hour under TSan. The suites run one at a time (`--no-parallel`): the
# sanitizers slow every memory access several times, and suites sharing the two-thread cooperative pool would
# starve one another past their real-time limits. `timeout` ends a run that hangs instead of the CI job.
# AddressSanitizer runs with its leak check (LeakSanitizer) on every suite; Tests/Support/lsan.supp names the
# toolchain's own one-time allocations it reports.
SANITIZER_TIMEOUT ?= 1800
SANITIZER_SUITES := EventLogTests|AppendQueueTests|QuotaTests|CorruptionTests|HTTPClientTests|ExportScheduleTests|RetryPolicyTests|FileExporterTests|RegistryTests|ClientConfigurationTests|TLSTests|HTTP2ConnectionTests|StatusMatrixTests|OutageTests|ExportIntegrationTests|ClientRecordingTests
test-sanitizers: deps test-deps
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 timeout $(SANITIZER_TIMEOUT) $(SWIFT) test --scratch-path .build-tsan \
		--sanitize=thread --no-parallel --filter '$(SANITIZER_SUITES)' --skip DemoExportTests
	ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/Support/lsan.supp timeout $(SANITIZER_TIMEOUT) \
		$(SWIFT) test --scratch-path .build-asan --sanitize=address --no-parallel --filter '$(SANITIZER_SUITES)' --skip DemoExportTests

# Thousands of damage cases (TFLOW_DAMAGE_CASES, a new seed each run unless TFLOW_DAMAGE_SEED is set), then the
# libFuzzer targets for the record codec and protobuf reader and for the LMDB page walker, FUZZ_SECONDS each.
# The fuzzers run even when damage cases failed (their report stays above).
fuzz: deps
	$(SWIFT) build --build-tests
	-TFLOW_DAMAGE_CASES=$${TFLOW_DAMAGE_CASES:-$(FUZZ_CASES)} TFLOW_DAMAGE_SEED=$${TFLOW_DAMAGE_SEED:-$$(date +%s)} \
		$(SWIFT) test --skip-build --filter DamageSuiteTests
	bash Tests/Fuzz/build.sh
	mkdir -p .build/fuzz/corpus-codec .build/fuzz/corpus-walker
	.build/fuzz/codec-fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096 .build/fuzz/corpus-codec
	.build/fuzz/walker-fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=65536 .build/fuzz/corpus-walker

bench: deps
	$(SWIFT) build -c release --product tflow-bench
	$(SWIFT) build -c release --product tflow-export-bench
	$(SWIFT) build -c release --product tflow-client-bench
	$(CC) -O2 -o Benchmarks/lmdb-raw/lmdb-raw Benchmarks/lmdb-raw/lmdb-raw.c $$(pkg-config --cflags --libs lmdb)
	.build/release/tflow-bench --raw Benchmarks/lmdb-raw/lmdb-raw $(BENCH_ARGS)
	.build/release/tflow-export-bench
	.build/release/tflow-client-bench

# The client's recording calls and the same calls through swift-otel (Benchmarks/Peers, a package of its own: its
# cold release build takes about 12 minutes here), alternated in one run, so that each figure has its peer's beside it.
PEER_ROUNDS ?= 3
bench-peers: deps
	$(SWIFT) build -c release --product tflow-client-bench
	cd Benchmarks/Peers && $(SWIFT) build -c release
	for round in $$(seq $(PEER_ROUNDS)); do \
		for op in counter histogram log span; do \
			.build/release/tflow-client-bench --only $$op --mode paced $(BENCH_ARGS); \
			Benchmarks/Peers/.build/release/SwiftOTelPeer --only $$op $(BENCH_ARGS); \
		done; \
	done

clean:
	rm -rf .build .build-tsan .build-asan Benchmarks/lmdb-raw/lmdb-raw
