#!/usr/bin/env bash
# npm start: run a node on its defaults (data in $SMTORP_DATA or ~/.smtorp, its own tor).
# Creates the node on first start. Extra arguments go to `smtorp run`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v tor >/dev/null 2>&1 && [ ! -x /usr/sbin/tor ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's tor"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tor >/dev/null
  else
    echo "smtorp needs tor: install it (sudo apt-get install tor) and run npm start again." >&2
    exit 1
  fi
fi
export PATH="$PWD/node_modules/.bin:$PATH:/usr/sbin"
exec tsx node/cli/main.ts run "$@"
