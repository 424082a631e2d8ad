/*
 * text.h - checks on untrusted text before it is trusted as an identity
 * or exported (request headers, CGI environment) by the glue.
 */
#ifndef BTSSO_TEXT_H
#define BTSSO_TEXT_H

#include <apr.h>

/*
 * Non-zero when s holds a character that must never reach a header, the
 * environment or a log line: any C0 control (NUL..US, TAB, CR and LF
 * included), DEL, a C1 control (U+0080..U+009F in UTF-8) or the Unicode
 * line and paragraph separators U+2028/U+2029 (some backends split lines
 * on those).  NULL counts as clean.
 */
int btsso_text_has_control(const char *s);

/*
 * Email equality as the store's SQL means it, but safe whatever the SQL
 * does: spaces trimmed at both ends (SQL trim()), ASCII letters compared
 * case-insensitively, every other byte exactly.  So a non-ASCII character
 * never matches an ASCII one ("\u212Aate@x" is not "kate@x", although
 * PostgreSQL's lower() folds KELVIN SIGN onto 'k').  NULL equals nothing.
 */
int btsso_email_equal(const char *a, const char *b);

#endif /* BTSSO_TEXT_H */
