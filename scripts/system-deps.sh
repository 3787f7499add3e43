#!/usr/bin/env bash
# Debian packages the app and its tests need: a CJK TrueType font for the
# certificates, PostgreSQL and Redis servers, Chromium for browser tests,
# poppler-utils (pdftotext / pdffonts / pdftoppm) to check PDFs, nginx as the
# reverse proxy of the production-stack tests (scripts/stack.sh), Node.js (>= 20.19,
# with npm) for the OpenID Connect provider of the portal login tests (tests/oidc) and
# axe-core, the accessibility checker the browser tests load (tests/a11y).
set -euo pipefail
PKGS="fonts-wqy-microhei poppler-utils postgresql redis-server chromium nginx nodejs"
missing=""
for p in $PKGS; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
# npm: Debian's nodejs + npm, unless a Node.js with its own npm is already installed.
if ! command -v npm >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm
fi
