#!/bin/sh
# Keeps the manuals, the directives' help strings and the packaged schema in
# step with the code (make check; also debian/rules' test step):
#   - every directive of config.c's table has a help string that names its
#     default ("default ...") -- `apache2 -L` is a reference -- and an On/Off
#     directive says "On or Off";
#   - every directive appears in mod_btsso(5), every command and option of
#     `btssoctl --help` in btssoctl(8) (a "### command" heading, an option
#     item);
#   - every BTSSOnnnn log tag of the code is explained (docs/runbook.md or
#     docs/operator-guide.md);
#   - both man pages render with no groff/man warning at 80 columns;
#   - schema/btsso-sqlite3.sql (and btsso-pgsql.sql, when BTSSO_TEST_PGSQL
#     names a PostgreSQL server, btsso-mysql.sql when BTSSO_TEST_MYSQL names
#     a MySQL/MariaDB one) builds the same tables, indexes and triggers as
#     `btssoctl init`, which then has nothing to do.
# Parses config.c without assuming which directives exist, so directives
# added later are held to the same rules.
#   t/check-docs.sh [BUILDDIR]     (default: the current directory)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-.}" && pwd)
ctl="$build/btssoctl"
fail=0
tmp=$(mktemp -d)
pgdbs=""
mydbs=""
my_client() {   # APR DBD mysql params -> the mariadb client's options
    echo "$1" | tr ' ' '\n' | sed -n 's/^host=/-h /p; s/^port=/-P /p;
        s/^user=/-u /p; s/^pass=/--password=/p' | tr '\n' ' '
}
cleanup() {
    for db in $mydbs; do
        # shellcheck disable=SC2046
        mariadb --no-defaults $(my_client "$BTSSO_TEST_MYSQL") \
            -e "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    done
    for db in $pgdbs; do
        psql -q -X "$BTSSO_TEST_PGSQL" -c "DROP DATABASE IF EXISTS $db" \
            >/dev/null 2>&1 || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# ---- help strings and the directive reference -----------------------------
"$ctl" --help > "$tmp/usage" || { echo "check-docs: $ctl --help failed" >&2; exit 1; }
python3 - "$top/mod_btsso/httpd/config.c" "$build/man/mod_btsso.5" \
    "$top/docs/man/btssoctl.8.md" "$tmp/usage" <<'PY' || fail=1
import re, sys
config_c, man5, man8_md, usage = sys.argv[1:5]
src = open(config_c).read()
bad = 0

def entries(text):
    """(macro, name, help) of each AP_INIT_*(...) entry, however wrapped."""
    for m in re.finditer(r'AP_INIT_(\w+)\s*\(', text):
        i, depth, instr, body = m.end(), 1, False, []
        while i < len(text) and depth:
            c = text[i]
            if instr:
                if c == '\\':
                    body.append(text[i:i + 2]); i += 2; continue
                if c == '"':
                    instr = False
            elif c == '"':
                instr = True
            elif c == '(':
                depth += 1
            elif c == ')':
                depth -= 1
            body.append(c); i += 1
        body = ''.join(body)[:-1]
        # the help string: the string literals after the last top-level comma
        args, depth, instr, cur = [], 0, False, ''
        for j, c in enumerate(body):
            if instr:
                cur += c
                if c == '"' and body[j - 1] != '\\':
                    instr = False
                continue
            if c == '"':
                instr = True
            elif c == '(':
                depth += 1
            elif c == ')':
                depth -= 1
            elif c == ',' and depth == 0:
                args.append(cur); cur = ''; continue
            cur += c
        args.append(cur)
        name = re.findall(r'"((?:[^"\\]|\\.)*)"', args[0])
        helptext = ''.join(re.findall(r'"((?:[^"\\]|\\.)*)"', args[-1]))
        if name:
            yield m.group(1), name[0], helptext

found = list(entries(src))
if len(found) < 10:
    print("check-docs: found only %d directives in %s" % (len(found), config_c))
    bad = 1
man5_text = open(man5).read().replace('\\-', '-')
for macro, name, helptext in found:
    if not re.search(r'\bdefault', helptext, re.I):
        print("check-docs: %s: help string names no default "
              "(\"... (default X)\"): %r" % (name, helptext))
        bad = 1
    if macro == 'FLAG' and 'On or Off' not in helptext:
        print("check-docs: %s: On/Off directive's help string does not say "
              "\"On or Off\": %r" % (name, helptext))
        bad = 1
    if not re.search(r'\b%s\b' % re.escape(name), man5_text):
        print("check-docs: %s is missing from mod_btsso(5) "
              "(docs/directives.md)" % name)
        bad = 1

# ---- btssoctl(8) against btssoctl --help ------------------------------------
md = open(man8_md).read()
headings = [h.strip() for h in re.findall(r'^### (.*)$', md, re.M)]
text = open(usage).read()
commands, options, lines = [], [], []
part = 'commands'
for line in text.splitlines()[1:]:
    if line.startswith('options:'):
        part = 'options'; continue
    if line.startswith('exit status'):
        break
    if part == 'commands' and line.startswith('  '):
        lines.append(line.strip())
    elif part == 'options':
        m = re.match(r'^  (-{1,2}[a-z-]+)', line)
        if m:
            options.append(m.group(1))
# "cmd sub ARGS   cmd sub2 | cmd3 ARGS": alternatives split on " | "; a
# column after 3+ spaces is another command when it starts with a command
# word, else a comment ("create or upgrade the schema")
top = set()
for l in lines:
    for alt in l.split(' | '):
        top.add(alt.split()[0])
word = re.compile(r'^[a-z][a-z0-9-]*$')
for l in lines:
    for alt in l.split(' | '):
        for k, piece in enumerate(re.split(r'\s{3,}', alt.strip())):
            w = piece.split()
            if not w or (k > 0 and w[0] not in top):
                continue
            cmd = w[0] if len(w) < 2 or not word.match(w[1]) \
                else w[0] + ' ' + w[1]
            commands.append((cmd, piece))
for cmd, alt in commands:
    if not any(h == cmd or h.startswith(cmd + ' ') for h in headings):
        print("check-docs: btssoctl command '%s' (usage: %s) has no "
              "'### %s ...' entry in docs/man/btssoctl.8.md" % (cmd, alt, cmd))
        bad = 1
opt_sec = md.split('## OPTIONS', 1)[-1].split('\n## ', 1)[0]
for o in options:
    if '`%s' % o not in opt_sec:
        print("check-docs: btssoctl option %s is not in btssoctl(8)'s "
              "OPTIONS" % o)
        bad = 1
if len(commands) < 10 or not options:
    print("check-docs: could not read the commands of btssoctl --help")
    bad = 1
sys.exit(bad)
PY

# ---- every log tag is explained ---------------------------------------------
# in the runbook or (for tags added with their own documentation) in the
# operator guide's table
for tag in $(grep -rhoE '"BTSSO[0-9]{4}' "$top/mod_btsso" | tr -d '"' | sort -u); do
    if ! grep -q "$tag" "$top/docs/runbook.md" \
            && ! grep -q "$tag" "$top/docs/operator-guide.md"; then
        echo "check-docs: log tag $tag is explained neither in" \
             "docs/runbook.md nor in docs/operator-guide.md" >&2
        fail=1
    fi
done

# ---- the man pages render cleanly -------------------------------------------
if command -v man >/dev/null 2>&1; then
    for page in "$build/man/btssoctl.8" "$build/man/mod_btsso.5"; do
        if ! MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -E UTF-8 -l "$page" \
                > "$tmp/page.txt" 2> "$tmp/page.err" \
                || [ -s "$tmp/page.err" ] || [ ! -s "$tmp/page.txt" ]; then
            echo "check-docs: $page does not render cleanly:" >&2
            cat "$tmp/page.err" >&2
            fail=1
        fi
    done
fi

# ---- the packaged schema is init's ------------------------------------------
for d in sqlite3 pgsql mysql; do
    if ! "$ctl" schema $d | cmp -s - "$build/schema/btsso-$d.sql"; then
        echo "check-docs: schema/btsso-$d.sql is not btssoctl schema $d" \
             "(stale build?)" >&2
        fail=1
    fi
done
if command -v sqlite3 >/dev/null 2>&1; then
    sqlite3 -bail "$tmp/script.db" < "$build/schema/btsso-sqlite3.sql" >/dev/null
    "$ctl" -d sqlite3 -p "$tmp/init.db" init >/dev/null
    out=$("$ctl" -d sqlite3 -p "$tmp/script.db" init)
    case "$out" in
        *"nothing to do"*) ;;
        *) echo "check-docs: after btsso-sqlite3.sql, init still did: $out" >&2
           fail=1 ;;
    esac
    q="SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"
    sqlite3 "$tmp/script.db" "$q" > "$tmp/lite-script.txt"
    sqlite3 "$tmp/init.db" "$q" > "$tmp/lite-init.txt"
    if [ "$(wc -l < "$tmp/lite-init.txt")" -lt 10 ] \
            || ! cmp -s "$tmp/lite-script.txt" "$tmp/lite-init.txt"; then
        echo "check-docs: btsso-sqlite3.sql and btssoctl init build different" \
             "schemas" >&2
        fail=1
    fi
fi
if [ -n "${BTSSO_TEST_PGSQL:-}" ] && command -v psql >/dev/null 2>&1; then
    a=btsso_docs_script_$$
    b=btsso_docs_init_$$
    pgdbs="$a $b"
    psql -q -X "$BTSSO_TEST_PGSQL" -c "CREATE DATABASE $a" >/dev/null
    psql -q -X "$BTSSO_TEST_PGSQL" -c "CREATE DATABASE $b" >/dev/null
    pa=$(echo "$BTSSO_TEST_PGSQL" | sed "s/dbname=[^ ]*/dbname=$a/")
    pb=$(echo "$BTSSO_TEST_PGSQL" | sed "s/dbname=[^ ]*/dbname=$b/")
    psql -q -X -v ON_ERROR_STOP=1 "$pa" -f "$build/schema/btsso-pgsql.sql" >/dev/null
    "$ctl" -d pgsql -p "$pb" init >/dev/null
    out=$("$ctl" -d pgsql -p "$pa" init)
    case "$out" in
        *"nothing to do"*) ;;
        *) echo "check-docs: after btsso-pgsql.sql, init still did: $out" >&2
           fail=1 ;;
    esac
    q="SELECT table_name || '.' || column_name || ' ' || data_type || ' ' ||
              is_nullable || ' ' || coalesce(column_default, '')
         FROM information_schema.columns WHERE table_schema = 'public'
       UNION ALL SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'
       UNION ALL SELECT tgname || ' ' || pg_get_triggerdef(oid)
         FROM pg_trigger WHERE NOT tgisinternal
       UNION ALL SELECT proname || ' ' || md5(prosrc) FROM pg_proc
         WHERE pronamespace = 'public'::regnamespace
       ORDER BY 1"
    psql -X -At -v ON_ERROR_STOP=1 "$pa" -c "$q" > "$tmp/pg-script.txt"
    psql -X -At -v ON_ERROR_STOP=1 "$pb" -c "$q" > "$tmp/pg-init.txt"
    if [ "$(wc -l < "$tmp/pg-init.txt")" -lt 20 ] \
            || ! cmp -s "$tmp/pg-script.txt" "$tmp/pg-init.txt"; then
        echo "check-docs: btsso-pgsql.sql and btssoctl init build different" \
             "schemas" >&2
        fail=1
    fi
fi
if [ -n "${BTSSO_TEST_MYSQL:-}" ] && command -v mariadb >/dev/null 2>&1; then
    a=btsso_docs_script_$$
    b=btsso_docs_init_$$
    mydbs="$a $b"
    myc=$(my_client "$BTSSO_TEST_MYSQL")
    # shellcheck disable=SC2086
    mariadb --no-defaults $myc -e "CREATE DATABASE $a; CREATE DATABASE $b"
    # shellcheck disable=SC2086
    mariadb --no-defaults $myc "$a" < "$build/schema/btsso-mysql.sql"
    pa=$(echo "$BTSSO_TEST_MYSQL" | sed "s/dbname=[^ ]*/dbname=$a/")
    pb=$(echo "$BTSSO_TEST_MYSQL" | sed "s/dbname=[^ ]*/dbname=$b/")
    "$ctl" -d mysql -p "$pb" init >/dev/null
    out=$("$ctl" -d mysql -p "$pa" init)
    case "$out" in
        *"nothing to do"*) ;;
        *) echo "check-docs: after btsso-mysql.sql, init still did: $out" >&2
           fail=1 ;;
    esac
    myq() {   # the schema of database $1, without its name
        # shellcheck disable=SC2086
        mariadb --no-defaults $myc -N -B information_schema -e "
          SELECT CONCAT_WS(' ', TABLE_NAME, COLUMN_NAME, COLUMN_TYPE,
                 IS_NULLABLE, COALESCE(COLUMN_DEFAULT, ''), COLLATION_NAME,
                 EXTRA, COALESCE(GENERATION_EXPRESSION, ''))
            FROM COLUMNS WHERE TABLE_SCHEMA = '$1'
          UNION ALL SELECT CONCAT_WS(' ', TABLE_NAME, INDEX_NAME, NON_UNIQUE,
                 SEQ_IN_INDEX, COLUMN_NAME, COALESCE(SUB_PART, ''))
            FROM STATISTICS WHERE TABLE_SCHEMA = '$1'
          UNION ALL SELECT CONCAT_WS(' ', TRIGGER_NAME, EVENT_MANIPULATION,
                 ACTION_TIMING, SQL_MODE, MD5(ACTION_STATEMENT))
            FROM TRIGGERS WHERE TRIGGER_SCHEMA = '$1'
          UNION ALL SELECT CONCAT_WS(' ', TABLE_NAME, ENGINE, TABLE_COLLATION)
            FROM TABLES WHERE TABLE_SCHEMA = '$1'
          ORDER BY 1"
    }
    myq "$a" > "$tmp/my-script.txt"
    myq "$b" > "$tmp/my-init.txt"
    if [ "$(wc -l < "$tmp/my-init.txt")" -lt 20 ] \
            || ! cmp -s "$tmp/my-script.txt" "$tmp/my-init.txt"; then
        echo "check-docs: btsso-mysql.sql and btssoctl init build different" \
             "schemas" >&2
        diff "$tmp/my-script.txt" "$tmp/my-init.txt" >&2 || true
        fail=1
    fi
fi
[ $fail = 0 ] && echo "check-docs: manuals, help strings and schema scripts agree"
exit $fail
