#!/usr/bin/env bash
# Install the system packages the test suite drives for real, when they are missing.
set -euo pipefail

missing=()
if ! command -v pg_config >/dev/null || [ ! -x "$(pg_config --bindir 2>/dev/null)/postgres" ]; then
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
fi
# The admin's browser tests drive Debian's Chromium with Playwright.
command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || missing+=(chromium)
# The deliverability tests score every starter template with SpamAssassin's local rules.
command -v spamassassin >/dev/null || missing+=(spamassassin)
# `nurture dkim generate` (and the DKIM tests) make RSA keys with OpenSSL.
command -v openssl >/dev/null || missing+=(openssl)
# The inbound-mail tests read replies and bounces from a throw-away Dovecot IMAP server.
[ -x /usr/sbin/dovecot ] && [ -x /usr/lib/dovecot/imap ] || missing+=(dovecot-imapd)
# bench/pipeline.py sends into Postfix's smtp-sink, a C SMTP server that costs next to nothing.
[ -x /usr/sbin/smtp-sink ] || missing+=(postfix)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "missing system packages: ${missing[*]} (install them, or run as root on Debian)" >&2
  exit 0  # the tests that need them say so, and fail under CI=true
fi
echo "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if [[ " ${missing[*]} " == *" postfix "* ]]; then
  # Only its smtp-sink is wanted: no mail name to ask for, no configured MTA.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if [[ " ${missing[*]} " == *" postfix "* ]]; then
  # Leave no Postfix daemon listening on port 25 (with "No configuration" none should start).
  { postfix stop || true; } >/dev/null 2>&1
  { systemctl disable --now postfix || true; } >/dev/null 2>&1
fi
