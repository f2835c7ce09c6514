#!/usr/bin/env bash
# `make demo`: a private mosquitto on loopback, the gateway, simulated devices, live telemetry, two
# commands with their responses. Runs DEMO_SECONDS (default 30; 0 = until Ctrl-C), then stops
# everything it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release}
DEMO_SECONDS=${DEMO_SECONDS:-30}
work=$(mktemp -d /tmp/gatehouse-demo.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
  echo "demo stopped; nothing left running"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }

mqtt_port=$(free_port); http_port=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$mqtt_port" > "$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" > "$work/mosquitto.log" 2>&1 & pids+=($!)
wait_port "$mqtt_port" || { echo "mosquitto did not start"; cat "$work/mosquitto.log"; exit 1; }
head -c 32 /dev/urandom | base64 > "$work/fleet.key"; chmod 600 "$work/fleet.key"

export GATEHOUSE_MQTT_URL="mqtt://127.0.0.1:$mqtt_port" GATEHOUSE_AUTH_KEY_FILE="$work/fleet.key"
export GATEHOUSE_GATEWAY_LISTEN="127.0.0.1:$http_port" GATEHOUSE_SPOOL_DIR="$work/spool"
"$BIN/gatehouse" --config examples/demo.yaml > "$work/gateway.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http_port/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$http_port/readyz" >/dev/null || { echo "gateway not ready"; cat "$work/gateway.log"; exit 1; }
echo "== mosquitto on 127.0.0.1:$mqtt_port, gateway demo-gw on http://127.0.0.1:$http_port (ws://127.0.0.1:$http_port/v1/connect)"

sim_seconds=$DEMO_SECONDS; [ "$DEMO_SECONDS" = 0 ] && sim_seconds=0
"$BIN/gatehouse-sim" --url "ws://127.0.0.1:$http_port/v1/connect" --key-file "$work/fleet.key" \
  --thermostats 3 --cameras 2 --sensors 3 --rate 1 --duration "$sim_seconds" --prefix demo > "$work/sim.log" 2>&1 & sim=$!; pids+=($sim)
sleep 2

ctl() { local sub=$1; shift; "$BIN/gatehousectl" "$sub" --url "$GATEHOUSE_MQTT_URL" "$@"; }
echo "== devices"; ctl devices
echo "== live telemetry (5 s)"; ctl watch --duration 5 || true
echo "== send set_setpoint to demo-thermo-1"; ctl send demo-thermo-1 set_setpoint celsius=23.5 || true
echo "== send snapshot to demo-cam-1"; ctl send demo-cam-1 snapshot || true
echo "== gateways"; ctl gateways

if [ "$DEMO_SECONDS" = 0 ]; then
  echo "== running until Ctrl-C (live telemetry below)"; ctl watch
else
  left=$(( DEMO_SECONDS - 10 )); [ $left -gt 0 ] && { echo "== watching for ${left}s more"; ctl watch --duration "$left" || true; }
  wait "$sim" 2>/dev/null || true
  echo "== simulator summary"; cat "$work/sim.log" | tail -15
fi
