#!/usr/bin/env bash
# Sets up a fresh machine for Synod: checks Node, installs pnpm if missing,
# installs the workspace and, where apt-get may, chromium for the chaos report's
# browser test. With --start, then starts the lock service: three
# replicas on 127.0.0.1:7501-7503, data in .synod/lock (Ctrl-C stops them).
set -euo pipefail
cd "$(dirname "$0")/.."

required_major=20
required_minor=19
version=$(node --version 2>/dev/null || true)
if [[ -z "$version" ]]; then
  echo "setup: Node.js is not installed; install Node ${required_major}.${required_minor}+ first" >&2
  exit 1
fi
major=${version#v}; major=${major%%.*}
minor=${version#v*.}; minor=${minor%%.*}
if (( major < required_major || (major == required_major && minor < required_minor) )); then
  echo "setup: Node ${version} is too old; Synod needs ${required_major}.${required_minor} or newer" >&2
  exit 1
fi

pnpm_version=$(node -p "require('./package.json').packageManager.split('@')[1]")
if ! command -v pnpm >/dev/null 2>&1 || [[ "$(pnpm --version)" != "${pnpm_version}" ]]; then
  echo "setup: installing pnpm ${pnpm_version}"
  npm install --global --no-fund --no-audit "pnpm@${pnpm_version}" >/dev/null
fi

pnpm install --frozen-lockfile

# The chaos report's browser test renders the report in chromium: install
# Debian's when there is none, if apt-get is here and we may run it as root.
if [[ -z "${CHROME_PATH:-}" ]] && ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  as_root=""
  if (( EUID != 0 )) && sudo -n true >/dev/null 2>&1; then as_root="sudo -n"; fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: chromium is missing and there is no apt-get to install it; install chromium (or set CHROME_PATH) for the report's browser test" >&2
  elif (( EUID != 0 )) && [[ -z "$as_root" ]]; then
    echo "setup: chromium is missing and installing it needs root or sudo without a password; install chromium (or set CHROME_PATH) for the report's browser test" >&2
  else
    echo "setup: installing chromium with apt-get, for the report's browser test"
    if ! apt_output=$({ $as_root apt-get update -qq; $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } 2>&1); then
      echo "setup: apt-get could not install chromium: $(tail -n 1 <<<"$apt_output")" >&2
    fi
  fi
fi

if [[ "${1:-}" == "--start" ]]; then
  exec pnpm start
fi
