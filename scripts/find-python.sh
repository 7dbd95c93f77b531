#!/usr/bin/env sh
# Print the path of a Python >= 3.12 interpreter, or explain what to install.
# Order: $PYTHON, python3.13 / python3.12 / python3 on PATH, then pyenv's
# installed versions (newest first). Shims are skipped in favour of real files.
ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }
for c in "${PYTHON:-}" python3.13 python3.12 python3; do
  [ -n "$c" ] || continue
  p=$(command -v "$c" 2>/dev/null) || continue
  if ok "$p"; then echo "$p"; exit 0; fi
done
root=""
if command -v pyenv >/dev/null 2>&1; then root=$(pyenv root 2>/dev/null); fi
[ -n "$root" ] || root="${PYENV_ROOT:-$HOME/.pyenv}"
if [ -d "$root/versions" ]; then
  for v in $(ls "$root/versions" | grep -E '^3\.[0-9]+(\.[0-9]+)?$' | sort -t. -k1,1nr -k2,2nr -k3,3nr); do
    p="$root/versions/$v/bin/python3"
    if [ -x "$p" ] && ok "$p"; then echo "$p"; exit 0; fi
  done
fi
echo "error: tomofem needs Python >= 3.12 and none was found." >&2
echo "  Install one (e.g. 'pyenv install 3.12', 'apt-get install python3.12 python3.12-venv'," >&2
echo "  or your distribution's package), or point PYTHON=/path/to/python3.12 at it." >&2
exit 1
