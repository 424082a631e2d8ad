"""wrkpost.py - POST pre-made form bodies with wrk, each exactly once.

    from wrkpost import run_wrk_posts
    r = run_wrk_posts("http://127.0.0.1:8080/sso/acs", bodies, 8,
                      expect_status=303, cookie_name="btsso_session")
    r["rps"], r["bad"], r["errors"]

The login driver of bench/mellon.py, for any ACS (mod_btsso's /sso/acs,
mod_auth_mellon's /mellon/postResponse): bodies signed before any clock
starts, POSTed by `wrk -t2 -cC` (Debian's wrk 4.1, LuaJIT), every answer
checked for the expected status and session cookie, the rate measured
inside wrk over the requests actually made.  Imports nothing of the
benchmark, so bench.py and scale.py can use it too.
"""
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

# ---- the wrk POST driver ---------------------------------------------------

WRK_POST_LUA = r"""
-- POST pre-made bodies, each exactly once: thread k of NTHREADS owns the
-- k-th slice of the file's lines and stops when the slice is answered.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now()
    ffi.C.clock_gettime(1, ts)            -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local BODIES, TOTAL, NTHREADS = %(bodies)s, %(total)d, %(nthreads)d
local EXPECT, COOKIE, LOCATION = %(expect)d, %(cookie)s, %(location)s
local threads, created = {}, 0

function setup(thread)
    thread:set("id", created)
    created = created + 1
    table.insert(threads, thread)
end

function init(args)
    local first = math.floor(id * TOTAL / NTHREADS) + 1
    local last = math.floor((id + 1) * TOTAL / NTHREADS)
    local headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
    reqs, n = {}, 0
    local line_no = 0
    for line in io.lines(BODIES) do
        line_no = line_no + 1
        if line_no >= first and line_no <= last then
            n = n + 1
            reqs[n] = wrk.format("POST", nil, headers, line)
        end
    end
    reserved, sent, answered, bad = 0, 0, 0, 0
    t_first, t_last, exhausted, reported = 0, 0, 0, now()
    first_cookie, bad_example = "", ""
end

-- called once before every request(): a connection only gets a body that
-- is still free, the others wait (an hour: the thread stops long before)
function delay()
    if reserved < n then
        reserved = reserved + 1
        return 0
    end
    exhausted = 1
    return 3600000
end

function request()
    if sent < reserved then
        sent = sent + 1
        if sent == 1 then t_first = now() end
        return reqs[sent]
    end
    -- wrk's own dry run (it parses one request before the thread starts,
    -- to count pipelined requests): never sent
    return reqs[1]
end

function response(status, headers, body)
    answered = answered + 1
    t_last = now()
    local ok = status == EXPECT
    -- wrk keeps one header per name: the last Set-Cookie of the answer
    local c = headers["Set-Cookie"] or headers["set-cookie"] or ""
    local prefix = COOKIE .. "="
    local value = ""
    if c:sub(1, #prefix) == prefix then
        value = c:sub(#prefix + 1):match("^[^;]*")
    end
    if value == "" then ok = false end
    if LOCATION and headers["Location"] ~= LOCATION then ok = false end
    if ok then
        if first_cookie == "" then first_cookie = value end
    else
        bad = bad + 1
        if bad_example == "" then
            bad_example = string.format("%%d Location=%%s Set-Cookie=%%s",
                status, tostring(headers["Location"]), c:sub(1, 120))
        end
    end
    if answered == n then
        io.write(string.format("BENCHPOST done thread=%%d\n", id))
        io.flush()
        wrk.thread:stop()
    elseif t_last - reported > 1 then
        -- a sign of life for the caller, which gives up on a stalled run
        -- (an answer lost to a socket error never comes)
        reported = t_last
        io.write(string.format("BENCHPOST progress thread=%%d answered=%%d\n",
                               id, answered))
        io.flush()
    end
end

function done(summary, latency, requests)
    local a, b, ex, t0, t1 = 0, 0, 0, nil, nil
    local cookies, example = {}, ""
    for _, t in ipairs(threads) do
        a = a + (t:get("answered") or 0)
        b = b + (t:get("bad") or 0)
        ex = ex + (t:get("exhausted") or 0)
        local f, l = t:get("t_first") or 0, t:get("t_last") or 0
        if f > 0 and (t0 == nil or f < t0) then t0 = f end
        if l > 0 and (t1 == nil or l > t1) then t1 = l end
        table.insert(cookies, t:get("first_cookie") or "")
        if example == "" then example = t:get("bad_example") or "" end
    end
    local e = summary.errors
    io.write(string.format("BENCHPOST answered=%%d bad=%%d errors=%%d "
        .. "exhausted=%%d elapsed=%%.6f p50_us=%%d p99_us=%%d\n", a, b,
        e.connect + e.read + e.write + e.timeout, ex,
        (t0 and t1) and (t1 - t0) or 0,
        latency:percentile(50), latency:percentile(99)))
    io.write("BENCHPOST cookies=" .. table.concat(cookies, ",") .. "\n")
    io.write("BENCHPOST bad_example=" .. example .. "\n")
end
"""


def _lua_str(s):
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')


def run_wrk_posts(url, bodies, concurrency, duration=None, expect_status=303,
                  cookie_name="btsso_session", expect_location=None,
                  threads=2, workdir=None, timeout=600, stall=30):
    """POST pre-signed form bodies with wrk; a dict of what it measured.

    url          the ACS, e.g. http://127.0.0.1:PORT/sso/acs (mod_btsso)
                 or .../mellon/postResponse (mod_auth_mellon)
    bodies       urlencoded form bodies (bytes or str, no newline in one),
                 each POSTed at most once with Content-Type
                 application/x-www-form-urlencoded; thread k of `threads`
                 owns the k-th contiguous slice
    concurrency  wrk connections in all (-c), split over the threads (-t,
                 at most 2); keep-alive, as wrk does
    duration     None: every body is POSTed exactly once and each thread
                 stops when the last answer of its slice arrived (the
                 normal use: `requests` == len(bodies)).  A number of
                 seconds: wrk runs that long (-d) and the caller must give
                 more bodies than it can post; `exhausted` says how many
                 threads ran out of bodies (then the rate is too low; in
                 the exact mode it means nothing)
    expect_status, cookie_name, expect_location
                 an answer counts as `bad` unless its status is
                 expect_status AND its Set-Cookie sets cookie_name to a
                 non-empty value (AND, when given, its Location is
                 expect_location).  wrk keeps one header per name, so the
                 session cookie must be the answer's last Set-Cookie
                 (mod_btsso's and mellon's ACS set exactly one).

    Returns {"rps": answers per second between the first request sent and
    the last answer received (CLOCK_MONOTONIC inside wrk, over the
    requests actually made), "requests": answers, "bad": bad answers,
    "errors": wrk's socket errors (connect/read/write/timeout),
    "exhausted": see duration, "elapsed": s, "p50"/"p99": s,
    "cookies": [the first good cookie value of each thread],
    "bad_example": "status Location Set-Cookie" of the first bad answer}.
    Raises RuntimeError when wrk fails, or when (duration None) not every
    body was answered: after `timeout` seconds, or when no answer came for
    `stall` seconds (an answer lost to a socket error never comes).
    Needs wrk 4.x built with LuaJIT (Debian's wrk 4.1)."""
    if not bodies:
        raise ValueError("no bodies")
    nthreads = max(1, min(threads, concurrency, len(bodies)))
    own_dir = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="btsso-wrkpost-")
    try:
        body_file = os.path.join(workdir, "bodies.txt")
        with open(body_file, "wb") as f:
            for b in bodies:
                if isinstance(b, str):
                    b = b.encode("ascii")
                if b"\n" in b or b"\r" in b:
                    raise ValueError("a body holds a newline")
                f.write(b + b"\n")
        script = os.path.join(workdir, "post.lua")
        with open(script, "w") as f:
            f.write(WRK_POST_LUA % {
                "bodies": _lua_str(body_file), "total": len(bodies),
                "nthreads": nthreads, "expect": expect_status,
                "cookie": _lua_str(cookie_name),
                "location": _lua_str(expect_location)
                if expect_location else "nil"})
        # exact mode: -d is only an upper bound; the threads stop on their
        # own and wrk's main thread, asleep for -d, is woken by SIGINT
        run_for = duration if duration else timeout
        cmd = ["wrk", "-t", str(nthreads), "-c", str(concurrency),
               "-d", "%ds" % run_for, "--timeout", "30s", "-s", script, url]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        lines = queue.Queue()

        def reader():
            for line in p.stdout:
                lines.put(line)
            lines.put(None)

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        out = []
        finished = 0
        stalled = False
        deadline = time.monotonic() + run_for + 30
        try:
            while True:
                try:
                    line = lines.get(timeout=stall)
                except queue.Empty:
                    # no answer for `stall` seconds: a lost request (or a
                    # hung server); stop wrk and report what it counted
                    if stalled:
                        p.kill()
                    stalled = True
                    p.send_signal(signal.SIGINT)
                    continue
                if line is None:
                    break
                out.append(line)
                if line.startswith("BENCHPOST done"):
                    finished += 1
                    if finished == nthreads and not duration:
                        p.send_signal(signal.SIGINT)
                if time.monotonic() > deadline:
                    p.kill()
            err = p.stderr.read()
            p.wait()
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            t.join(5)
        text = "".join(out)
        m = re.search(r"BENCHPOST answered=(\d+) bad=(\d+) errors=(\d+) "
                      r"exhausted=(\d+) elapsed=([0-9.]+) p50_us=(\d+) "
                      r"p99_us=(\d+)", text)
        if p.returncode != 0 or m is None:
            raise RuntimeError("wrk failed (%s): %s%s" % (p.returncode, text,
                                                          err))
        answered = int(m.group(1))
        if not duration and answered != len(bodies):
            raise RuntimeError("wrk answered %d of %d bodies (%s)" % (
                answered, len(bodies), "no answer for %d s" % stall
                if stalled else "within %d s" % run_for))
        elapsed = float(m.group(5))
        cookies = re.search(r"BENCHPOST cookies=(.*)", text).group(1)
        example = re.search(r"BENCHPOST bad_example=(.*)", text).group(1)
        return {"rps": answered / elapsed if elapsed > 0 else 0.0,
                "requests": answered, "bad": int(m.group(2)),
                "errors": int(m.group(3)), "exhausted": int(m.group(4)),
                "elapsed": elapsed, "p50": int(m.group(6)) / 1e6,
                "p99": int(m.group(7)) / 1e6,
                "cookies": [c for c in cookies.split(",") if c],
                "bad_example": example}
    finally:
        if own_dir:
            shutil.rmtree(workdir, ignore_errors=True)
