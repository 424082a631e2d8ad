/*
 * text.c - control characters and ASCII-only email comparison.
 */
#include <string.h>

#include "core/text.h"

int btsso_text_has_control(const char *s)
{
    const unsigned char *c;

    if (s == NULL) {
        return 0;
    }
    for (c = (const unsigned char *)s; *c != '\0'; c++) {
        if ((unsigned)(*c - 0x20) < 0x5f) {
            continue;           /* printable ASCII, the common case */
        }
        if (*c < 0x20 || *c == 0x7f) {
            return 1;
        }
        /* C1 controls: U+0080..U+009F are C2 80..C2 9F in UTF-8 */
        if (c[0] == 0xc2 && c[1] >= 0x80 && c[1] <= 0x9f) {
            return 1;
        }
        /* U+2028 LINE SEPARATOR, U+2029 PARAGRAPH SEPARATOR */
        if (c[0] == 0xe2 && c[1] == 0x80 && (c[2] == 0xa8 || c[2] == 0xa9)) {
            return 1;
        }
    }
    return 0;
}

static unsigned char ascii_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

static void trim_spaces(const char *s, const char **start, apr_size_t *len)
{
    const char *e;

    while (*s == ' ') {
        s++;
    }
    e = s + strlen(s);
    while (e > s && e[-1] == ' ') {
        e--;
    }
    *start = s;
    *len = (apr_size_t)(e - s);
}

int btsso_email_equal(const char *a, const char *b)
{
    const char *sa, *sb;
    apr_size_t la, lb, i;

    if (a == NULL || b == NULL) {
        return 0;
    }
    trim_spaces(a, &sa, &la);
    trim_spaces(b, &sb, &lb);
    if (la != lb) {
        return 0;
    }
    for (i = 0; i < la; i++) {
        if (ascii_lower((unsigned char)sa[i])
            != ascii_lower((unsigned char)sb[i])) {
            return 0;
        }
    }
    return 1;
}
