#!/usr/bin/env bash
# System libraries the optional backends need that pip cannot install: envpool's Procgen
# loads Debian's Qt 5 runtime (libQt5Core.so.5, libQt5Gui.so.5). Installs them with apt-get
# when they are missing and this is root (or sudo works without a password); otherwise stops
# with the exact command to run. `--check` only reports (exit 1 when something is missing).
set -euo pipefail

packages=(libqt5core5a libqt5gui5)
libraries=(libQt5Core.so.5 libQt5Gui.so.5)

missing_libs() {
  local cache lib
  cache=$( (/sbin/ldconfig -p 2>/dev/null || ldconfig -p 2>/dev/null) || true)
  for lib in "${libraries[@]}"; do
    grep -q "$lib" <<<"$cache" || echo "$lib"
  done
}

missing=$(missing_libs)
if [ -z "$missing" ]; then
  echo "system libraries: Qt 5 runtime present (envpool Procgen can load)"
  exit 0
fi
command="apt-get update && apt-get install -y ${packages[*]}"
if [ "${1:-}" = "--check" ]; then
  echo "system libraries: missing $(echo $missing) (envpool Procgen); run: sudo sh -c '$command'" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "envpool's Procgen needs the Qt 5 runtime ($(echo $missing)) and this machine has no" \
    "apt-get: install your distribution's Qt 5 core and gui libraries, then rerun." >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "envpool's Procgen needs the Qt 5 runtime ($(echo $missing)); run this once," \
    "then rerun make:" >&2
  echo "  sudo sh -c '$command'" >&2
  exit 1
fi
echo "installing the Qt 5 runtime for envpool's Procgen: ${packages[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
  "${packages[@]}" >/dev/null
still=$(missing_libs)
if [ -n "$still" ]; then
  echo "apt-get installed ${packages[*]} but $(echo $still) still cannot be found" >&2
  exit 1
fi
echo "system libraries: Qt 5 runtime installed"
