#!/usr/bin/env bash
# Sets up a fresh machine for Synod: checks Node, installs pnpm if missing,
# installs the workspace. With --start, then starts the lock service: three
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

if [[ "${1:-}" == "--start" ]]; then
  exec pnpm start
fi
