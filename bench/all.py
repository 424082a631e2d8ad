#!/usr/bin/python3
"""all.py - every row of the scale issue's table, in one command.

    /usr/bin/python3 bench/all.py [--builddir DIR] [--quick]

Runs, one after the other on this machine, each with its own baseline in
its own run:

  bench/bench.py    logins and protected requests against a static file
  bench/scale.py    100,000 accounts / 1,000,000 users (bulk SQL seed),
                    cold accounts, memory
  bench/mellon.py   the same logins and protected requests against Debian's
                    mod_auth_mellon, when libapache2-mod-auth-mellon is
                    installed (scripts/deps.sh bench)

Each script's own table is shown as it comes; then the issue's table, with
the command line.  --quick runs smaller sizes (a look, not the figures).
Exit status 1 when a script failed or a row could not be read.
"""
import argparse
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# (figure, script, pattern whose group 1 is the ratio, goal, higher-is-better)
ROWS = [
    ("logins/s at /sso/acs / static-file req/s", "bench",
     r"^POST /sso/acs.*?\s(\d+\.\d+)\s+p50", 0.20, True),
    ("protected file, live session / the same file without auth", "bench",
     r"^GET /app/index\.html.*?\s(\d+\.\d+)\s+p50", 0.90, True),
    ("logins over 10 accounts, 100,000-account store / 10-account store",
     "scale", r"^logins over 10 accounts, \d+ accounts.*?\s(\d+\.\d+)\s+>=",
     0.83, True),
    ("logins over distinct accounts, each once (cold) / warm", "scale",
     r"^logins over \d+ accounts each once.*?\s(\d+\.\d+)\s+>=", 0.50, True),
    ("httpd PSS after the cold accounts / after 10 accounts", "scale",
     r"^httpd PSS after the \d+ cold accounts.*?\s(\d+\.\d+)\s+<=", 2.0,
     False),
    ("  the same PSS / after the timed warm run only (older baseline)",
     "scale", r"^  \(the same / after the timed warm run\)\s+(\d+\.\d+)",
     None, False),
    ("logins/s, mod_btsso / mod_auth_mellon", "mellon",
     r"^logins/s\s+\d+\s+\d+\s+(\d+\.\d+)", 10.0, True),
    ("protected req/s, mod_btsso / mod_auth_mellon", "mellon",
     r"^protected file req/s, live session\s+\d+\s+\d+\s+(\d+\.\d+)", 1.5,
     True),
]


def mellon_installed():
    p = subprocess.run(["dpkg-query", "-W", "-f=${Status}",
                        "libapache2-mod-auth-mellon"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                       text=True)
    return "ok installed" in p.stdout


def run(name, args):
    cmd = ["/usr/bin/python3", os.path.join(HERE, name + ".py")] + args
    sys.stderr.write("all: %s\n" % " ".join(cmd))
    sys.stderr.flush()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    sys.stdout.write(p.stdout + "\n")
    sys.stdout.flush()
    return p.returncode, p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--builddir", default=os.environ.get(
        "BTSSO_BUILDDIR", os.path.join(os.path.dirname(HERE), "build")))
    ap.add_argument("--quick", action="store_true",
                    help="smaller sizes: a look, not the figures")
    args = ap.parse_args()
    common = ["--builddir", args.builddir]
    sizes = {
        "bench": ["--logins", "4000"] if args.quick else [],
        "scale": ["--accounts", "10000", "--cold", "2000"] if args.quick
        else [],
        "mellon": ["--logins", "1000"] if args.quick else [],
    }
    scripts = ["bench", "scale"] + (["mellon"] if mellon_installed() else [])
    out, rc = {}, 0
    for name in scripts:
        code, text = run(name, common + sizes[name])
        out[name] = text
        rc = rc or (1 if code else 0)

    print("mod_btsso, the scale issue's table: /usr/bin/python3 bench/all.py"
          " %s" % " ".join(sys.argv[1:]))
    w = max(len(r[0]) for r in ROWS)
    print("%-*s  %8s  %s" % (w, "figure", "measured", "goal"))
    for label, script, pattern, goal, higher in ROWS:
        if script not in out:
            print("%-*s  %8s  %s" % (w, label, "-", "not run (install "
                                     "libapache2-mod-auth-mellon: "
                                     "scripts/deps.sh bench)"))
            continue
        m = re.search(pattern, out[script], re.M)
        if m is None:
            rc = 1
            print("%-*s  %8s  not found in %s.py's output" % (w, label, "?",
                                                             script))
            continue
        # the figure as the script printed it, judged on those digits
        # (mellon.py prints three: 1.4975 is not 1.50 >= 1.5)
        v = float(m.group(1))
        if goal is None:
            print("%-*s  %8s" % (w, label, m.group(1)))
            continue
        met = v >= goal if higher else v <= goal
        print("%-*s  %8s  %s %.2f %s" % (w, label, m.group(1),
                                         ">=" if higher else "<=", goal,
                                         "ok" if met else "MISSED"))
    return rc


if __name__ == "__main__":
    sys.exit(main())
