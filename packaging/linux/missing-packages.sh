#!/bin/sh
# Print the Debian packages among the arguments that are not installed, one per line.
#
# Each package is asked for with its architecture (the native one, then "all"):
# `dpkg -s libfontconfig1` is ambiguous, and fails, on multiarch machines that have
# the i386 library as well (Ubuntu desktops with Steam or Wine).
set -u
arch=$(dpkg --print-architecture)
for package in "$@"; do
  installed=no
  for qualified in "$package:$arch" "$package:all"; do
    status=$(dpkg-query -W -f='${Status}' "$qualified" 2>/dev/null) || continue
    case "$status" in *" installed") installed=yes; break ;; esac
  done
  [ "$installed" = yes ] || echo "$package"
done
