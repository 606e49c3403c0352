#!/usr/bin/env bash
# The whole test suite: system packages, one private Tor network for the run, every test.
#   npm ci && npm test
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests run for real: tor (private network), postfix (legacy relay and the
# ingest baseline, with smtp-source), openssl (test certificates), sasl2-bin (relay logins),
# chromium (web UI tests, driven by playwright-core; its dependencies bring a font, DejaVu),
# gnupg (OpenPGP interoperability: gpg, its agent and gpgconf), dovecot-imapd (the IMAP backup
# target, test/harness/dovecot.ts: dovecot and doveadm from dovecot-core, the imap server itself).
declare -A provides=([tor]=tor [tor-gencert]=tor [postfix]=postfix [smtp-source]=postfix [openssl]=openssl [saslpasswd2]=sasl2-bin [chromium]=chromium [gpg]=gnupg [gpg-agent]=gnupg [gpgconf]=gnupg [dovecot]=dovecot-imapd [doveadm]=dovecot-imapd)
missing=()
for tool in "${!provides[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("${provides[$tool]}")
done
[ -x /usr/lib/dovecot/imap ] || missing+=(dovecot-imapd)
[ -e /usr/lib/x86_64-linux-gnu/sasl2/libplain.so ] || [ -n "$(ls /usr/lib/*/sasl2/libplain.so* 2>/dev/null)" ] || missing+=(libsasl2-modules)
if [ ${#missing[@]} -gt 0 ]; then
  packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian packages: $packages"
    export DEBIAN_FRONTEND=noninteractive
    echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections 2>/dev/null || true
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $packages >/dev/null
  else
    echo "The tests need these Debian packages: $packages" >&2
    echo "Install them (sudo apt-get install $packages) or run the tests as root, which installs them." >&2
    exit 1
  fi
fi

export PATH="$PWD/node_modules/.bin:$PATH:/usr/sbin"
node --version | grep -q '^v2[4-9]' || { echo "expected Node 24 from node_modules (npm ci installs it)" >&2; exit 1; }

npm run --silent typecheck

# One private Tor network for every test file of this run (test/harness/tor-network.ts).
network_file=$(mktemp -u /tmp/smtorp-tor-network-XXXXXX.json)
tsx scripts/tor-network.ts start --file "$network_file" > /tmp/smtorp-tor-network.log 2>&1 &
network_pid=$!
cleanup() { kill -TERM "$network_pid" 2>/dev/null || true; wait "$network_pid" 2>/dev/null || true; }
trap cleanup EXIT INT TERM
for _ in $(seq 1 180); do
  [ -f "$network_file" ] && break
  kill -0 "$network_pid" 2>/dev/null || { cat /tmp/smtorp-tor-network.log >&2; echo "the private Tor network did not start" >&2; exit 1; }
  sleep 1
done
[ -f "$network_file" ] || { cat /tmp/smtorp-tor-network.log >&2; echo "the private Tor network did not start in 180 s" >&2; exit 1; }
export SMTORP_TOR_NETWORK="$network_file"

node --import tsx --test --test-concurrency=1 --test-timeout=600000 \
  'protocol/**/*.test.ts' 'node/**/*.test.ts' 'test/**/*.test.ts'
