#!/usr/bin/env bash
# System packages that pip cannot install, one component at a time:
#   qt        (default) envpool's Procgen loads Debian's Qt 5 runtime (libQt5Core.so.5,
#             libQt5Gui.so.5);
#   chromium  the report's browser test (tests/test_report_browser.py) opens report.html in
#             Debian's headless Chromium.
# Installs what is missing with apt-get when this is root (or sudo works without a password);
# otherwise stops with the exact command to run. `--check` only reports (exit 1 when something
# is missing). `--optional`: where nothing can be installed (no root, no apt-get), say so and
# exit 0 (the test that needs it then skips, naming this reason); a failed install still fails.
set -euo pipefail

component=qt
check=false
optional=false
for arg in "$@"; do
  case "$arg" in
    --check) check=true ;;
    --optional) optional=true ;;
    qt | chromium) component=$arg ;;
    *) echo "usage: $0 [--check] [--optional] [qt|chromium]" >&2; exit 2 ;;
  esac
done

libraries=()
binaries=()
case "$component" in
  qt)
    packages=(libqt5core5a libqt5gui5)
    libraries=(libQt5Core.so.5 libQt5Gui.so.5)
    needs="the Qt 5 runtime"
    for_what="envpool's Procgen"
    ;;
  chromium)
    packages=(chromium)
    binaries=(chromium)
    needs="Debian's Chromium"
    for_what="the report's browser test"
    ;;
esac

missing_parts() {
  local cache lib bin
  if [ ${#libraries[@]} -gt 0 ]; then
    cache=$( (/sbin/ldconfig -p 2>/dev/null || ldconfig -p 2>/dev/null) || true)
    for lib in "${libraries[@]}"; do
      grep -q "$lib" <<<"$cache" || echo "$lib"
    done
  fi
  for bin in "${binaries[@]}"; do
    command -v "$bin" >/dev/null 2>&1 || echo "$bin"
  done
}

cannot_install() {  # $1: the message; stops unless --optional
  echo "$1" >&2
  if $optional; then
    echo "(optional: continuing without it)" >&2
    exit 0
  fi
  exit 1
}

missing=$(missing_parts)
if [ -z "$missing" ]; then
  echo "system packages: $needs present ($for_what)"
  exit 0
fi
command="apt-get update && apt-get install -y ${packages[*]}"
if $check; then
  echo "system packages: missing $(echo $missing) ($for_what); run: sudo sh -c '$command'" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  cannot_install "$for_what needs $needs ($(echo $missing)) and this machine has no apt-get:
install your distribution's package, then rerun."
fi
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  cannot_install "$for_what needs $needs ($(echo $missing)); run this once, then rerun make:
  sudo sh -c '$command'"
fi
echo "installing $needs for $for_what: ${packages[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
  "${packages[@]}" >/dev/null
still=$(missing_parts)
if [ -n "$still" ]; then
  echo "apt-get installed ${packages[*]} but $(echo $still) still cannot be found" >&2
  exit 1
fi
echo "system packages: $needs installed"
