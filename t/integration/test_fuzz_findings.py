"""What the fuzzers (t/fuzz, docs/fuzzing.md) found, mounted through a real
httpd.

fuzz_metadata: metadata declaring an encoding whose bytes do not convert
made libxml2 print "encoding error : input conversion failed ..." and
"I/O error : encoder error" on stderr, i.e. raw lines in httpd's error log
(XML_PARSE_NOERROR does not silence errors raised without the parser
context).  The core never writes to stderr: the upload must be refused
with not_xml and leave no line in the log that httpd did not format.
"""
import re

import pytest

from adminlib import AdminPortal


@pytest.fixture
def portal(make_httpd):
    return AdminPortal(make_httpd).start()


BAD_ENCODING = (
    b'<?xml version="1.0" encoding="EUC-JP"?>'
    b'<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"'
    b' entityID="https://idp.example.test/x">\xff\xfe\x80\x81\xc3'
    b'</md:EntityDescriptor>')

# an httpd error-log line: "[Tue Dec 01 22:00:00.123456 2026] [module:level]"
HTTPD_LINE = re.compile(r"^\[[^\]]+\] \[[a-z_0-9]*:[a-z0-9]+\]")


@pytest.mark.parametrize("how", ["multipart", "xml"])
def test_metadata_bad_encoding_writes_nothing_to_error_log(portal, how):
    c = portal.client()
    log = portal.httpd.log_text
    before = len(log())
    for _ in range(3):
        if how == "multipart":
            r = c.post("metadata", files={"file": ("idp.xml", BAD_ENCODING,
                                                   "text/xml")})
        else:
            r = c.post("metadata", data=BAD_ENCODING, headers={
                "Content-Type": "application/samlmetadata+xml"})
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "not_xml"
    new = log()[before:]
    stray = [line for line in new.splitlines()
             if line.strip() and not HTTPD_LINE.match(line)]
    assert stray == [], "raw lines in the error log: %r" % stray[:4]
    assert "encoder error" not in new
    assert "input conversion failed" not in new
