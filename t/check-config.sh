#!/bin/sh
# Fails when a configuration field has no merge rule or no default, or when
# a directive is missing from the sample configuration or the directive
# reference: omissions that otherwise show only as a wrong value in a nested
# <VirtualHost>/<Location>, or as an undocumented knob.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
h="$top/mod_btsso/httpd/btsso_config.h"
c="$top/mod_btsso/httpd/config.c"
fail=0

fields() {   # struct name -> field names
    awk -v s="$1" '
        $0 ~ "^typedef struct " s " \\{" { on = 1; next }
        on && /^\}/ { on = 0 }
        on && /;/ && !/^ *\/\*/ {
            line = $0; sub(/\/\*.*/, "", line); sub(/;.*/, "", line)
            n = split(line, w, /[ *]+/); print w[n]
        }' "$h"
}

merge_body() { awk -v f="$1" '$0 ~ "^void \\*" f "\\(" { on = 1 } on { print } on && /^\}/ { exit }' "$c"; }

for f in $(fields btsso_srv_cfg); do
    case "$f" in rt|socache_provider|socache_instance) continue ;; esac
    if ! merge_body btsso_merge_srv_cfg | grep -Eq "(MERGE_[A-Z]+\($f\)|c->$f = )"; then
        echo "check-config: server field '$f' has no merge rule in btsso_merge_srv_cfg" >&2; fail=1
    fi
    if ! awk '/^const char \*btsso_config_resolve\(/,/^\}/' "$c" | grep -q "sc->$f"; then
        echo "check-config: server field '$f' gets no default in btsso_config_resolve" >&2; fail=1
    fi
done
for f in $(fields btsso_dir_cfg); do
    if ! merge_body btsso_merge_dir_cfg | grep -Eq "MERGE_[A-Z]+\($f\)"; then
        echo "check-config: directory field '$f' has no merge rule in btsso_merge_dir_cfg" >&2; fail=1
    fi
done
for d in $(grep -o 'AP_INIT_[A-Z_0-9]*("BTSSO[A-Za-z]*"' "$c" | sed 's/.*("//; s/"//'); do
    grep -qw "$d" "$top/conf/btsso.conf" || { echo "check-config: $d is not in conf/btsso.conf" >&2; fail=1; }
    grep -qw "$d" "$top/docs/directives.md" || { echo "check-config: $d is not in docs/directives.md" >&2; fail=1; }
done
# The default SQL of the four overridable queries, as docs/directives.md
# shows it, is the SQL the store ships (a stale copy there once still said
# that an extension administers: it never may, extensions repeat across
# accounts).
default_sql() {   # label macro -> the SQL of store_sql.c, on one line
    awk -v l="$1" '
        $0 ~ "\\{ " l "," { on = 1; next }
        on { line = $0; sub(/^ *"/, "", line); done = line ~ /",$/
             sub(/",?$/, "", line); sql = sql line; if (done) { print sql; exit } }
        ' "$top/mod_btsso/store/store_sql.c" | sed 's/\\"/"/g' | tr -s ' '
}
for pair in BTSSOUserQuery:BTSSO_Q_USER BTSSODuplicateEmailQuery:BTSSO_Q_DUPLICATES \
            BTSSOAdminQuery:BTSSO_Q_ADMIN BTSSOAccountByEmailQuery:BTSSO_Q_ACCOUNT_BY_EMAIL; do
    d=${pair%%:*}; sql=$(default_sql "${pair#*:}")
    if [ -z "$sql" ] || ! tr -s ' ' <"$top/docs/directives.md" | grep -qxF " $d \"$sql\""; then
        echo "check-config: docs/directives.md does not show the default $d: $sql" >&2; fail=1
    fi
done
if default_sql BTSSO_Q_ADMIN | grep -qi "extension *="; then
    echo "check-config: the default BTSSOAdminQuery must match the email only" >&2; fail=1
fi
[ $fail = 0 ] && echo "check-config: every field merged and defaulted, every directive documented"
exit $fail
