#!/usr/bin/python3
"""Turn the project's Markdown into a man page (roff, man macros).

    md2man.py --name NAME --section N [--source S] [--manual M] IN.md... > OUT

Only the Markdown the docs use: '#' headings (the first level is the
document title and is dropped; '##' becomes .SH, '###' .SS), paragraphs,
4-space code blocks, '-'/'1.' lists, pipe tables (each row becomes a tagged
paragraph: the first cell, then "header: cell" for the rest), `code`,
**bold**, *italic* and [links](...).  Several input files are read as one.
"""
import argparse
import re
import sys


def esc(text):
    """Escape roff specials in plain text."""
    return text.replace('\\', '\\e')


def inline(text):
    out = []
    pos = 0
    pattern = re.compile(r'`([^`]+)`|\*\*(.+?)\*\*|(?<![\w*])\*([^*\s][^*]*?)\*'
                         r'|\[([^\]]+)\]\(([^)]+)\)')
    for m in pattern.finditer(text):
        out.append(esc(text[pos:m.start()]))
        if m.group(1) is not None:
            out.append('\\fB' + esc(m.group(1)).replace('-', '\\-') + '\\fR')
        elif m.group(2) is not None:
            out.append('\\fB' + inline(m.group(2)) + '\\fR')
        elif m.group(3) is not None:
            out.append('\\fI' + inline(m.group(3)) + '\\fR')
        else:
            label, url = m.group(4), m.group(5)
            out.append(inline(label))
            if re.match(r'https?://', url):
                out.append(' <' + esc(url) + '>')
        pos = m.end()
    out.append(esc(text[pos:]))
    return ''.join(out)


def line(text):
    """A roff text line: no leading '.' or "'" (control characters)."""
    text = text.strip()
    if text[:1] in ('.', "'"):
        text = '\\&' + text
    return text


def cells(row):
    row = row.strip()
    if row.startswith('|'):
        row = row[1:]
    if row.endswith('|'):
        row = row[:-1]
    # a '|' inside `code` does not split a cell
    parts, cur, code = [], '', False
    for ch in row:
        if ch == '`':
            code = not code
        if ch == '|' and not code:
            parts.append(cur.strip())
            cur = ''
        else:
            cur += ch
    parts.append(cur.strip())
    return parts


def convert(lines, name, section, source, manual):
    # left-adjusted, no hyphenation: long paths and directive names would
    # otherwise make groff warn that it cannot adjust or break a line
    out = ['.TH %s %s "" "%s" "%s"' % (name.upper(), section, source, manual),
           '.ad l', '.nh']
    para = []
    cur_section = ''

    def flush():
        if para:
            text = inline(' '.join(p.strip() for p in para))
            if cur_section == 'NAME':
                text = text.replace(' - ', ' \\- ', 1)
            out.append('.PP')
            out.append(line(text))
            del para[:]

    i = 0
    n = len(lines)
    while i < n:
        raw = lines[i].rstrip('\n')
        if raw.strip() == '':
            flush()
            i += 1
            continue
        m = re.match(r'^(#{1,3})\s+(.*)$', raw)
        if m:
            flush()
            level, title = len(m.group(1)), m.group(2).strip()
            if level == 2:
                cur_section = re.sub(r'[`*]', '', title).upper()
                out.append('.SH "%s"' % esc(cur_section).replace('"', "'"))
            elif level == 3:
                out.append('.SS "%s"' % inline(title).replace('"', "'"))
            i += 1
            continue
        if raw.startswith('    ') and not para:
            block = []
            while i < n and (lines[i].startswith('    ')
                             or lines[i].strip() == ''):
                block.append(lines[i].rstrip('\n')[4:])
                i += 1
            while block and block[-1].strip() == '':
                block.pop()
            out.append('.PP')
            out.append('.RS 4')
            out.append('.nf')
            for b in block:
                out.append(line(esc(b)) if b.strip() else '')
            out.append('.fi')
            out.append('.RE')
            continue
        if raw.lstrip().startswith('|'):
            flush()
            rows = []
            while i < n and lines[i].lstrip().startswith('|'):
                rows.append(cells(lines[i]))
                i += 1
            header = rows[0]
            body = [r for r in rows[1:]
                    if not all(re.match(r'^:?-+:?$', c) for c in r)]
            for r in body:
                out.append('.TP')
                out.append(line(inline(r[0])))
                rest = []
                for h, c in zip(header[1:], r[1:]):
                    rest.append((inline(h) + ': ' if h else '') + inline(c))
                out.append(line('; '.join(rest)) if rest else '\\&')
            continue
        m = re.match(r'^(\s*)(-|\d+\.)\s+(.*)$', raw)
        if m:
            flush()
            bullet = '\\(bu' if m.group(2) == '-' else m.group(2)
            item = [m.group(3)]
            i += 1
            while i < n and lines[i].strip() != '' \
                    and not re.match(r'^\s*(-|\d+\.)\s+', lines[i]) \
                    and lines[i].startswith(' '):
                item.append(lines[i].strip())
                i += 1
            out.append('.IP %s 4' % bullet)
            out.append(line(inline(' '.join(item))))
            continue
        para.append(raw)
        i += 1
    flush()
    return '\n'.join(out) + '\n'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--name', required=True)
    ap.add_argument('--section', required=True)
    ap.add_argument('--source', default='mod_btsso')
    ap.add_argument('--manual', default='')
    ap.add_argument('files', nargs='+')
    a = ap.parse_args()
    lines = []
    for f in a.files:
        with open(f, encoding='utf-8') as fh:
            lines.extend(fh.readlines())
        lines.append('\n')
    sys.stdout.write(convert(lines, a.name, a.section, a.source, a.manual))


if __name__ == '__main__':
    main()
