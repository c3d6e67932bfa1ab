#!/usr/bin/env bash
# Make sure Debian's chromium is installed for the dashboard tests (driven by Playwright
# with its executable path set; Playwright's own browser download is never used).
set -euo pipefail
command -v chromium >/dev/null && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing Debian's chromium package (apt-get)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
  }
  exit 0
fi
echo "chromium is not installed (the dashboard tests need it): apt-get install chromium" >&2
exit 1
