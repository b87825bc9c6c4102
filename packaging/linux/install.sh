#!/bin/sh
# Install the bundle for the current user: ~/.local/opt/dockpool, a menu entry, the icon,
# and *.dockpool.toml opening in Dockpool. Run from the repository after `make package`.
# Uninstall: packaging/linux/install.sh --uninstall
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
data=${XDG_DATA_HOME:-$HOME/.local/share}
opt=$HOME/.local/opt/dockpool
bin=$HOME/.local/bin
bundle=${DOCKPOOL_BUNDLE:-$here/dist/Dockpool}

if [ "${1:-}" = "--uninstall" ]; then
  rm -rf "$opt" "$bin/dockpool" "$bin/dockpool-gui" "$data/applications/dockpool.desktop" \
         "$data/mime/packages/dockpool.xml"
  for size in 16 24 32 48 64 128 256; do rm -f "$data/icons/hicolor/${size}x${size}/apps/dockpool.png"; done
  update-mime-database "$data/mime" 2>/dev/null || true
  update-desktop-database "$data/applications" 2>/dev/null || true
  exit 0
fi

[ -x "$bundle/Dockpool" ] || { echo "build the bundle first: make package" >&2; exit 1; }
mkdir -p "$opt" "$bin" "$data/applications" "$data/mime/packages"
rm -rf "$opt" && cp -a "$bundle" "$opt"
ln -sf "$opt/Dockpool" "$bin/dockpool-gui"
ln -sf "$opt/dockpool" "$bin/dockpool"
sed "s|@BIN@|$opt/Dockpool|" "$here/packaging/linux/dockpool.desktop" > "$data/applications/dockpool.desktop"
cp "$here/packaging/linux/dockpool-mime.xml" "$data/mime/packages/dockpool.xml"
for size in 16 24 32 48 64 128 256; do
  mkdir -p "$data/icons/hicolor/${size}x${size}/apps"
  cp "$here/resources/icons/dockpool-$size.png" "$data/icons/hicolor/${size}x${size}/apps/dockpool.png"
done
update-mime-database "$data/mime" 2>/dev/null || true
update-desktop-database "$data/applications" 2>/dev/null || true
echo "Installed to $opt; 'Dockpool' is in the applications menu, 'dockpool' in $bin."
