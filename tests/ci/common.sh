# tests/ci/common.sh - shared by the tests/ci/*.sh scripts (sourced).
#
# Copyright (c) 2026 The libosalloc developers.  MIT licence (see COPYING).

set -euo pipefail

# The top of the source tree.
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# Where builds and logs go: $OSALLOC_CI_WORK, else a new temporary directory.
ci_workdir() { # ci_workdir NAME
	local base=${OSALLOC_CI_WORK:-${TMPDIR:-/tmp}}
	mkdir -p "$base"
	mktemp -d "$base/osalloc-$1.XXXXXX"
}

log() { printf '%s\n' "$*"; }

# The library's C sources, as Makefile.am lists them for the core library
# (so that a future drop-in malloc in lib/ is never compiled into a test
# program that must keep the C library's malloc).
lib_sources() {
	sed -n '/^lib_libosalloc_core_la_SOURCES/,/^$/p' "$TOP/Makefile.am" |
		grep -o 'lib/[A-Za-z0-9_-]*\.c' | sort -u | sed "s|^|$TOP/|"
}

# Copies the tracked and untracked-but-not-ignored files of the tree to $1
# (a build there does not see the in-tree build).
copy_tree() {
	local dest=$1
	mkdir -p "$dest"
	(
		cd "$TOP"
		if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
			git ls-files -z --cached --others --exclude-standard |
				while IFS= read -r -d '' f; do
					if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
				done | tar --null -T - -cf -
		else
			tar --exclude=.git -cf - .
		fi
	) | tar -xf - -C "$dest"
}

# Runs a command with its output in a file; on failure shows the end.
quiet() { # quiet LOGFILE CMD...
	local logfile=$1
	shift
	if ! "$@" >"$logfile" 2>&1; then
		log "FAILED: $* (last 60 lines of $logfile follow)"
		tail -n 60 "$logfile"
		return 1
	fi
}

need() { # need PROGRAM...
	local p
	for p in "$@"; do
		command -v "$p" >/dev/null 2>&1 || {
			log "missing: $p (apt-get install it)"
			return 1
		}
	done
}
