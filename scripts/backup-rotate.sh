#!/bin/sh
# Take one verified, encrypted Streamzy backup into a dated file and keep the newest KEEP.
#
#   backup-rotate.sh STREAMZY_BIN BACKUP_DIR KEEP
#
# Run by deploy/systemd/streamzy-backup.service (daily). `streamzy backup --verify` restores
# the new file into a scratch place and opens every message before it exits 0, and records
# that in the database (system_state backup_verified). Older backups are pruned only after
# a verified one exists; a file whose verification failed is renamed *.failed, never counted.
set -eu

if [ "$#" -ne 3 ]; then
    echo "usage: $0 STREAMZY_BIN BACKUP_DIR KEEP" >&2
    exit 2
fi
bin=$1
dir=$2
keep=$3
case $keep in
    '' | *[!0-9]*) echo "KEEP must be a whole number, got '$keep'" >&2; exit 2 ;;
esac
if [ "$keep" -lt 1 ]; then
    echo "KEEP must be at least 1" >&2
    exit 2
fi

umask 077
mkdir -p "$dir"
file="$dir/streamzy-$(date -u +%Y%m%dT%H%M%SZ).backup"
if ! "$bin" backup --verify "$file"; then
    if [ -e "$file" ]; then
        mv -f -- "$file" "$file.failed"
    fi
    echo "backup failed: kept the older backups as they are" >&2
    exit 1
fi

# Dated names sort by time; everything past the newest KEEP goes.
ls -1 "$dir" | grep -E '^streamzy-[0-9]{8}T[0-9]{6}Z\.backup$' | sort -r \
    | tail -n "+$((keep + 1))" | while read -r old; do
        rm -f -- "$dir/$old"
    done
echo "kept the newest $keep backups in $dir"
