#!/usr/bin/env bash
# `make demo`: the gateway with its embedded mosquitto on loopback, simulated devices, live telemetry,
# two commands with their responses, the status page, the desired state (a thermostat that sleeps gets a new
# setpoint, the delta stays pending until it wakes, converges and reports it) and a camera's live view (a viewer
# token, its URLs, and an MJPEG viewer that keeps demo-cam-1 streaming while the demo runs). Runs DEMO_SECONDS
# (default 30; 0 = until Ctrl-C), then stops
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

mqtt_port=$(free_port); http_port=$(free_port)
head -c 32 /dev/urandom | base64 > "$work/fleet.key"; chmod 600 "$work/fleet.key"

# No mqtt.url: the gateway starts, supervises and finally stops its own mosquitto.
export GATEHOUSE_MQTT_EMBEDDED_PORT="$mqtt_port" GATEHOUSE_MQTT_EMBEDDED_DIR="$work/mosquitto"
export GATEHOUSE_AUTH_KEY_FILE="$work/fleet.key" GATEHOUSE_GATEWAY_LISTEN="127.0.0.1:$http_port" GATEHOUSE_SPOOL_DIR="$work/spool"
"$BIN/gatehouse" --config examples/demo.yaml > "$work/gateway.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http_port/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$http_port/readyz" >/dev/null || { echo "gateway not ready"; cat "$work/gateway.log"; exit 1; }
echo "== gateway demo-gw with its embedded mosquitto on 127.0.0.1:$mqtt_port"
echo "   devices: ws://127.0.0.1:$http_port/v1/connect   status page: http://127.0.0.1:$http_port/"

sim_seconds=$DEMO_SECONDS; [ "$DEMO_SECONDS" = 0 ] && sim_seconds=0
"$BIN/gatehouse-sim" --url "ws://127.0.0.1:$http_port/v1/connect" --key-file "$work/fleet.key" \
  --thermostats 3 --cameras 2 --sensors 3 --rate 1 --duration "$sim_seconds" --prefix demo > "$work/sim.log" 2>&1 & sim=$!; pids+=($sim)
# A battery thermostat: connected 4 s, asleep 6 s, again and again.
"$BIN/gatehouse-sim" --url "ws://127.0.0.1:$http_port/v1/connect" --key-file "$work/fleet.key" \
  --thermostats 1 --cameras 0 --sensors 0 --rate 1 --duration "$sim_seconds" --prefix sleepy --sleep 6 --awake 4 \
  > "$work/sleepy.log" 2>&1 & pids+=($!)
sleep 2

ctl() { local sub=$1; shift; "$BIN/gatehousectl" "$sub" --url "mqtt://127.0.0.1:$mqtt_port" "$@"; }
echo "== devices"; ctl devices
echo "== live telemetry (5 s)"; ctl watch --duration 5 || true
echo "== send set_setpoint to demo-thermo-1"; ctl send demo-thermo-1 set_setpoint celsius=23.5 || true
echo "== send snapshot to demo-cam-1"; ctl send demo-cam-1 snapshot || true
echo "== gateways"; ctl gateways
echo "== the status page's data (GET /api/status)"
curl -s "http://127.0.0.1:$http_port/api/status" | python3 -c 'import json,sys; s=json.load(sys.stdin); g=s["gateway"]; print("gateway %s: ready=%s, embedded broker pid %s, %s devices, %s msg/s in; spool %s entries" % (g["id"], g["ready"], g["embedded_broker"]["pid"], g["devices_connected"], g["messages_in_per_s"], s["spool"]["entries"]))'

availability() { ctl show sleepy-thermo-1 --json 2>/dev/null | python3 -c 'import json,sys; print((json.load(sys.stdin).get("availability") or {}).get("state"))' 2>/dev/null || true; }
delta_empty() { ctl show sleepy-thermo-1 --json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin).get("delta"); print("yes" if d and d["data"] == {} else "no")' 2>/dev/null || true; }
echo "== desired state: waiting for sleepy-thermo-1 to fall asleep"
for _ in $(seq 100); do [ "$(availability)" = offline ] && break; sleep 0.2; done
echo "== gatehousectl desired sleepy-thermo-1 setpoint=24.5 mode=heat (while it sleeps)"
ctl desired sleepy-thermo-1 setpoint=24.5 mode=heat || true
echo "== show: the delta is pending"; ctl show sleepy-thermo-1 || true
echo "== it wakes, gets the desired frame right after welcome, converges and reports: the delta empties"
for _ in $(seq 150); do [ "$(delta_empty)" = yes ] && break; sleep 0.2; done
ctl show sleepy-thermo-1 || true
echo "== live view of demo-cam-1 (a viewer token for it, valid 1 h)"
viewer=$("$BIN/gatehousectl" token issue demo-viewer --scope view --devices demo-cam-1 --expires 1h \
  --key-file "$work/fleet.key" --url "http://127.0.0.1:$http_port" 2> "$work/live-urls.txt")
sed 's/^/   /' "$work/live-urls.txt"
echo "   status page with live tiles: http://127.0.0.1:$http_port/?token=$viewer"
# A viewer of our own keeps the camera streaming (the lease) until the demo ends.
curl -sN "http://127.0.0.1:$http_port/v1/live/demo-cam-1.mjpeg?token=$viewer" -o /dev/null & pids+=($!)
sleep 2
curl -s "http://127.0.0.1:$http_port/metrics" | awk '/^gatehouse_live_(viewers|frames_in_total|frames_sent_total) /{print "   "$1" "$2}'

if [ "$DEMO_SECONDS" = 0 ]; then
  echo "== running until Ctrl-C (live telemetry below)"; ctl watch
else
  left=$(( DEMO_SECONDS - 20 )); [ $left -gt 0 ] && { echo "== watching for ${left}s more"; ctl watch --duration "$left" || true; }
  wait "$sim" 2>/dev/null || true
  echo "== live frames so far"
  curl -s "http://127.0.0.1:$http_port/metrics" | awk '/^gatehouse_live_(frames_in_total|frames_sent_total|frames_dropped_total) /{print "   "$1" "$2}' || true
  wait "${pids[2]}" 2>/dev/null || true
  echo "== simulator summary"; cat "$work/sim.log" | tail -15
fi
