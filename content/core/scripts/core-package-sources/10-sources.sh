# core-package-sources: APT sources in /etc/apt/sources.list.d/fulcrum.list. The mirror is the
# registry's `packages` service when one is registered, else attrib core-package-mirror.
# Attribs: core-root, service-packages, core-package-mirror, core-package-suite, core-package-components.
# It does not run apt-get update: roles that install packages do.
ROOT=$(fulcrum-attr core-root 2>/dev/null || echo /); ROOT=${ROOT%/}
MIRROR=$(fulcrum-attr service-packages 2>/dev/null || true)
[ -n "$MIRROR" ] && [ "$MIRROR" != null ] || MIRROR=$(fulcrum-attr core-package-mirror 2>/dev/null || echo http://deb.debian.org/debian)
SUITE=$(fulcrum-attr core-package-suite 2>/dev/null || sed -n 's/^VERSION_CODENAME=//p' "$ROOT/etc/os-release" 2>/dev/null || true)
[ -n "$SUITE" ] || SUITE=bookworm
COMPONENTS=$(fulcrum-attr core-package-components 2>/dev/null || echo main)
case "$MIRROR" in http://*|https://*|file:/*) ;; *) echo "core-package-sources: mirror '$MIRROR' is not an http(s) or file URL" >&2; exit 1 ;; esac
FILE=$ROOT/etc/apt/sources.list.d/fulcrum.list
{ echo "# Written by Fulcrum (role core-package-sources)."; echo "deb $MIRROR $SUITE $COMPONENTS"; } | fulcrum-put "$FILE"
echo "package sources: $MIRROR $SUITE $COMPONENTS"
