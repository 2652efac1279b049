#!/usr/bin/env bash
# The browser tests drive Debian's chromium package through Playwright (never a downloaded browser).
# Install it when it is missing; stop the test run with a clear message when that is not possible.
set -u
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then exit 0; fi
echo "ensure_chromium: $CHROMIUM is missing; installing Debian's chromium package (apt-get)..." >&2
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_chromium: FAILED: apt-get is not available here; install the 'chromium' package so that $CHROMIUM exists." >&2
  exit 1
fi
if ! ($SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium) >&2; then
  echo "ensure_chromium: FAILED: could not install chromium with apt-get (needs root and the Debian mirrors);" \
       "the browser tests (tests/test_web_browser.py) need $CHROMIUM." >&2
  exit 1
fi
if [ ! -x "$CHROMIUM" ]; then
  echo "ensure_chromium: FAILED: apt-get finished but $CHROMIUM is still missing." >&2
  exit 1
fi
echo "ensure_chromium: installed $("$CHROMIUM" --version 2>/dev/null | head -1)" >&2
