#!/bin/sh
# Installs Gatehouse on a Debian-like box: the three binaries, /etc/gatehouse (config from the commented
# example, a fleet key with mode 0600, broker credentials), /var/lib/gatehouse, the systemd unit, and a
# local mosquitto configuration with an ACL. Idempotent: existing config, keys and passwords are kept.
#
#   sudo deploy/install.sh                      # builds release, installs under /usr/local
#   PREFIX=/opt/gatehouse deploy/install.sh
#   DESTDIR=/tmp/pkg BIN_DIR=.build/release deploy/install.sh   # stage a tree (no users, no systemctl)
set -eu
cd "$(dirname "$0")/.."
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
BIN_DIR=${BIN_DIR:-}
ETC="$DESTDIR/etc/gatehouse"
say() { printf 'install.sh: %s\n' "$*"; }

if [ -z "$BIN_DIR" ]; then
  say "building release binaries (swift build -c release)"
  swift build -c release
  BIN_DIR=.build/release
fi
for binary in gatehouse gatehousectl gatehouse-sim; do
  [ -x "$BIN_DIR/$binary" ] || { say "missing $BIN_DIR/$binary"; exit 1; }
done

live=false
if [ -z "$DESTDIR" ] && [ "$(id -u)" = 0 ]; then live=true; fi
if $live && ! id gatehouse >/dev/null 2>&1; then
  say "creating system user gatehouse"
  useradd --system --home-dir /var/lib/gatehouse --no-create-home --shell /usr/sbin/nologin gatehouse
fi

install -d -m 0755 "$DESTDIR$PREFIX/bin"
for binary in gatehouse gatehousectl gatehouse-sim; do
  install -m 0755 "$BIN_DIR/$binary" "$DESTDIR$PREFIX/bin/$binary"
done
install -d -m 0750 "$ETC" "$DESTDIR/var/lib/gatehouse"

secret() { head -c 32 /dev/urandom | base64; }
new_file() {  # new_file PATH MODE: true (and creates it empty) only when PATH does not exist yet
  [ -e "$1" ] && return 1
  ( umask 077; : > "$1" ); chmod "$2" "$1"
}
if new_file "$ETC/fleet.key" 0600; then secret > "$ETC/fleet.key"; say "generated the fleet key $ETC/fleet.key"; fi
if new_file "$ETC/mqtt.password" 0600; then secret > "$ETC/mqtt.password"; fi
if new_file "$ETC/control.password" 0600; then secret > "$ETC/control.password"; fi
if [ ! -e "$ETC/gatehouse.yaml" ]; then
  sed -e 's|^  url: "mqtt://127.0.0.1:1883"|  url: "mqtt://127.0.0.1:1883"\n  username: gatehouse\n  password_file: /etc/gatehouse/mqtt.password|' \
    deploy/gatehouse.example.yaml > "$ETC/gatehouse.yaml"
  chmod 0640 "$ETC/gatehouse.yaml"
  say "wrote $ETC/gatehouse.yaml (edit gateway.id and gateway.listen)"
fi
[ -e "$ETC/revoked.txt" ] || printf '# revoked device ids or token jti values, one per line (re-read within a second)\n' > "$ETC/revoked.txt"

install -d -m 0755 "$DESTDIR/etc/systemd/system"
sed "s|@PREFIX@|$PREFIX|g" deploy/gatehouse.service > "$DESTDIR/etc/systemd/system/gatehouse.service"
chmod 0644 "$DESTDIR/etc/systemd/system/gatehouse.service"

install -d -m 0755 "$DESTDIR/etc/mosquitto/conf.d"
install -m 0644 deploy/mosquitto/gatehouse.conf "$DESTDIR/etc/mosquitto/conf.d/gatehouse.conf"
install -m 0644 deploy/mosquitto/gatehouse.acl "$DESTDIR/etc/mosquitto/gatehouse.acl"
passwd_file="$DESTDIR/etc/mosquitto/gatehouse.passwd"
if [ ! -e "$passwd_file" ] && command -v mosquitto_passwd >/dev/null; then
  ( umask 077; : > "$passwd_file" )
  mosquitto_passwd -b "$passwd_file" gatehouse "$(cat "$ETC/mqtt.password")"
  mosquitto_passwd -b "$passwd_file" control "$(cat "$ETC/control.password")"
  say "broker users gatehouse and control created; the control password is in $ETC/control.password"
fi

if $live; then
  chown -R root:gatehouse "$ETC"
  chown gatehouse:gatehouse "$ETC/fleet.key" "$ETC/mqtt.password" /var/lib/gatehouse
  chown mosquitto "$passwd_file" 2>/dev/null || true
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    say "start with: systemctl enable --now gatehouse (and systemctl restart mosquitto)"
  fi
fi
say "installed under ${DESTDIR:-/} (binaries in $PREFIX/bin)"
