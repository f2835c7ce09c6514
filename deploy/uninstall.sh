#!/bin/sh
# Removes what deploy/install.sh installed. Keeps /etc/gatehouse (keys, config) and /var/lib/gatehouse
# (the spool: messages not yet delivered) unless --purge is given.
set -eu
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
purge=false
[ "${1:-}" = "--purge" ] && purge=true
if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  systemctl disable --now gatehouse 2>/dev/null || true
fi
rm -f "$DESTDIR$PREFIX/bin/gatehouse" "$DESTDIR$PREFIX/bin/gatehousectl" "$DESTDIR$PREFIX/bin/gatehouse-sim"
rm -f "$DESTDIR/etc/systemd/system/gatehouse.service" "$DESTDIR/etc/mosquitto/conf.d/gatehouse.conf" \
  "$DESTDIR/etc/mosquitto/gatehouse.acl" "$DESTDIR/etc/mosquitto/gatehouse.passwd"
if $purge; then
  rm -rf "$DESTDIR/etc/gatehouse" "$DESTDIR/var/lib/gatehouse"
  [ -z "$DESTDIR" ] && id gatehouse >/dev/null 2>&1 && userdel gatehouse || true
fi
printf 'uninstall.sh: removed Gatehouse%s\n' "$($purge && echo ', its config and its spool' || echo '; kept /etc/gatehouse and /var/lib/gatehouse')"
