#!/usr/bin/env bash
# Checks the systemd units in this folder: `systemd-analyze verify` must
# print nothing (any warning fails), and each unit's exposure score from
# `systemd-analyze security` must stay at or below MAX_EXPOSURE (0-100,
# where 10 is 1.0; systemd calls up to 2.0 "OK").
#
# `verify` refuses a unit whose ExecStart binary does not exist, so the
# units are checked from a temporary copy whose ExecStart points at a stub.
# Nothing on this machine is installed, started or changed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MAX_EXPOSURE="${MAX_EXPOSURE:-20}"

if ! command -v systemd-analyze >/dev/null; then
    echo "verify.sh: systemd-analyze not found (Debian: apt-get install -y systemd)" >&2
    exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
printf '#!/bin/sh\nexit 0\n' >"$tmp/tally"
chmod 0755 "$tmp/tally"

units=()
for unit in "$here"/*.service; do
    name="$(basename "$unit")"
    grep -q '^ExecStart=/usr/local/bin/tally ' "$unit" || {
        echo "verify.sh: $name: ExecStart does not run /usr/local/bin/tally" >&2
        exit 1
    }
    sed "s#/usr/local/bin/tally#$tmp/tally#g" "$unit" >"$tmp/$name"
    units+=("$tmp/$name")
done
[ "${#units[@]}" -gt 0 ] || { echo "verify.sh: no units in $here" >&2; exit 1; }

status=0
out="$(cd "$tmp" && systemd-analyze verify "${units[@]}" 2>&1)" || status=$?
if [ "$status" -ne 0 ] || [ -n "$out" ]; then
    echo "verify.sh: systemd-analyze verify failed (exit $status):" >&2
    echo "$out" >&2
    exit 1
fi

for u in "${units[@]}"; do
    name="$(basename "$u")"
    if ! score="$(cd "$tmp" && systemd-analyze security --offline=true \
        --threshold="$MAX_EXPOSURE" "$u" 2>&1)"; then
        echo "$score" >&2
        echo "verify.sh: $name: exposure above $MAX_EXPOSURE/100" >&2
        exit 1
    fi
    echo "$name: $(echo "$score" | grep -o 'Overall exposure level.*')"
done
echo "verify.sh: ${#units[@]} units verified"
