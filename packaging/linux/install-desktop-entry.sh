#!/bin/sh
# Add medviewer to the desktop's application menu for the current user (no root needed).
# Run it from the unpacked app folder (the one holding the `medviewer` executable):
#     ./install-desktop-entry.sh            # install
#     ./install-desktop-entry.sh --remove   # undo
set -eu
here=$(cd "$(dirname "$0")" && pwd)
data=${XDG_DATA_HOME:-$HOME/.local/share}
entry="$data/applications/medviewer.desktop"
if [ "${1:-}" = "--remove" ]; then
    rm -f "$entry"
    for size in 16 24 32 48 64 128 256 512; do rm -f "$data/icons/hicolor/${size}x${size}/apps/medviewer.png"; done
    rm -f "$data/icons/hicolor/scalable/apps/medviewer.svg"
    echo "medviewer removed from the application menu"
    exit 0
fi
[ -x "$here/medviewer" ] || { echo "no medviewer executable in $here" >&2; exit 1; }
mkdir -p "$data/applications"
for size in 16 24 32 48 64 128 256 512; do
    mkdir -p "$data/icons/hicolor/${size}x${size}/apps"
    cp "$here/icons/medviewer-$size.png" "$data/icons/hicolor/${size}x${size}/apps/medviewer.png"
done
mkdir -p "$data/icons/hicolor/scalable/apps"
cp "$here/icons/medviewer.svg" "$data/icons/hicolor/scalable/apps/medviewer.svg"
# The entry points at this folder's executable (quoted, in case the path has spaces).
sed -e "s|^Exec=medviewer |Exec=\"$here/medviewer\" |" -e "s|^TryExec=medviewer$|TryExec=$here/medviewer|" \
    "$here/medviewer.desktop" > "$entry"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$data/applications" || true
command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q "$data/icons/hicolor" || true
echo "medviewer added to the application menu ($entry)"
