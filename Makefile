# Gatehouse — the two commands a new user needs: `make demo` and `make test`.
SHELL := /bin/bash
SWIFT ?= swift
DEMO_SECONDS ?= 30
APT_PACKAGES := mosquitto mosquitto-clients libmosquitto-dev libjpeg62-turbo-dev pkg-config openssl python3-pip curl gcc
# Only for `make bench`: OpenSSL's headers, for the load generator's wss:// connections.
BENCH_APT_PACKAGES := libssl-dev
PY_PACKAGES := pytest websockets paho-mqtt

.PHONY: deps bench-deps build release test check-ui demo bench soak fuzz clean

## Installs what is missing (Debian, as root): mosquitto, libmosquitto-dev, libjpeg-turbo (the simulator's camera
## frames), and the Python test clients.
apt_install = @missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
deps:
	$(call apt_install,$(APT_PACKAGES))
	@python3 -c "import pytest, websockets, paho.mqtt" 2>/dev/null || python3 -m pip install -q -r Tests/e2e/requirements.txt

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

## The whole suite: Swift unit and live-broker tests, then the black-box end-to-end suite against the binaries.
test: build
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	python3 -m pytest Tests/e2e -q

## The status page in a real browser: headless Chromium (Debian's package) renders it against a live
## gateway with simulated devices, the script checks the DOM and saves a screenshot (.build/check-ui/status.png).
check-ui: build
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
	BIN=.build/debug python3 Tests/ui/check_ui.py

## A private mosquitto, the gateway and simulated devices for DEMO_SECONDS (0 = until Ctrl-C).
demo: release
	DEMO_SECONDS=$(DEMO_SECONDS) ./examples/demo.sh

## The benchmark suite (docs/benchmarks.md; gcc builds its load generator, examples/bench_clients.c, with OpenSSL, and
## the round trip's MQTT clients, examples/bench_rtt.c, with libmosquitto), each scenario beside its baseline in the same run: telemetry QoS 1/0 vs
## mosquitto's own clients, live view fan-out, idle connections and a connect storm vs mosquitto's WebSocket listener,
## command round trip vs mosquitto alone, spool write and drain. BENCH_QUICK=1 for small sizes; BIN=.build/debug to
## measure a debug build without building release.
BIN ?= .build/release
comma := ,
BENCH_QUICK_ENV := $(if $(filter-out 0,$(BENCH_QUICK)),BENCH_DEVICES=10 BENCH_MESSAGES=500 BENCH_LIVE_SECONDS=3 BENCH_LIVE_VIEWERS=1$(comma)10)
bench-deps: deps
	$(call apt_install,$(BENCH_APT_PACKAGES))

bench: $(if $(filter .build/release,$(BIN)),release,deps) bench-deps
	BIN=$(BIN) $(BENCH_QUICK_ENV) python3 examples/bench.py
	BIN=$(BIN) $(BENCH_QUICK_ENV) python3 examples/bench_live.py
	BIN=$(BIN) python3 examples/bench_idle.py
	BIN=$(BIN) python3 examples/bench_storm.py
	BIN=$(BIN) python3 examples/bench_rtt.py
	BIN=$(BIN) python3 examples/bench_spool.py
	BIN=$(BIN) python3 examples/bench_flat.py

## Not in CI: SOAK_MINUTES of streaming with random device drops and broker kills; fails on any lost
## message or growing gateway memory. Uses the debug build unless GATEHOUSE_BIN says otherwise.
SOAK_MINUTES ?= 10
soak: build
	python3 -u Tests/e2e/soak.py --minutes $(SOAK_MINUTES)

## Not in CI: libFuzzer (with AddressSanitizer; leak checks off: the Swift runtime's caches look like leaks)
## over device messages and media headers for FUZZ_SECONDS, from the committed
## corpus (Fuzz/corpus); new interesting inputs are added to it. Crashes are saved in Fuzz/.
FUZZ_SECONDS ?= 120
# Swift's `-sanitize=fuzzer` does not instrument Swift code for coverage by itself with this toolchain: without the
# `-sanitize-coverage` below the fuzzer sees no new input as interesting and mutates a single one blindly.
fuzz:
	GATEHOUSE_FUZZ=1 $(SWIFT) build -c release --build-path .build-fuzz --product FuzzDeviceMessages \
	  --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp
	cd Fuzz && ASAN_OPTIONS=detect_leaks=0 ../.build-fuzz/release/FuzzDeviceMessages -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -detect_leaks=0 \
	  -dict=device-messages.dict corpus/device-messages

clean:
	rm -rf .build
