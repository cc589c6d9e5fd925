// Turns an entry's payload into DOM nodes. Nothing here writes HTML: every byte of the
// payload reaches the page through textContent, so markup in a payload is text.
//
// ANSI SGR (colours, bold, faint, italic, underline) is parsed by ansi_up; we take its
// fragments (text plus attributes) instead of its HTML and build the spans ourselves, with
// classes for the 16 and 256 colours and CSSOM styles for true colour (allowed by the
// Content-Security-Policy, which forbids style attributes). OSC 8 hyperlinks are not made
// into links: url_allowlist is empty, so a `javascript:` (or any) link stays text.
//
// Control characters other than TAB, and the bidirectional formatting characters, are shown
// as visible marks (U+2400 Control Pictures, or ⟨U+202E⟩), never interpreted: a payload
// cannot reorder what the reader sees.

import { AnsiUp } from './ansi_up.js';

const BIDI = new Set([0x061c, 0x200e, 0x200f, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e,
                      0x2066, 0x2067, 0x2068, 0x2069]);

function hex4(cp) {
    return cp.toString(16).toUpperCase().padStart(4, '0');
}

// Replaces what must not be interpreted with visible marks. ESC stays: ansi_up consumes the
// sequences it knows and drops the others. Newlines become ⏎ when oneLine (a row of the log
// view), and stay when not (the detail view shows them as line breaks).
export function visible(text, oneLine) {
    let out = '';
    for (const ch of text) {
        const cp = ch.codePointAt(0);
        if (cp === 0x1b || cp === 0x09) {
            out += ch;
        } else if (cp === 0x0a) {
            out += oneLine ? '\u23ce' : '\n';
        } else if (cp < 0x20) {
            out += String.fromCodePoint(0x2400 + cp);
        } else if (cp === 0x7f) {
            out += '\u2421';
        } else if ((cp >= 0x80 && cp <= 0x9f) || BIDI.has(cp) || cp === 0xfeff) {
            out += '\u27e8U+' + hex4(cp) + '\u27e9';
        } else {
            out += ch;
        }
    }
    return out;
}

class Fragments extends AnsiUp {
    constructor() {
        super();
        this.use_classes = true;
        this.url_allowlist = {};
        this.frags = [];
    }
    transform_to_html(fragment) {
        if (fragment.text.length)
            this.frags.push(Object.assign({}, fragment));
        return '';
    }
    process_hyperlink(pkt) {
        // OSC 8: the link's text as plain text, never a link.
        if (pkt.text && pkt.text.length)
            this.frags.push({ text: pkt.text, bold: false, faint: false, italic: false,
                              underline: false, fg: null, bg: null });
        return '';
    }
}

function colour(span, c, which) {
    if (!c)
        return;
    if (c.class_name !== 'truecolor') {
        span.classList.add(c.class_name + '-' + which);
    } else {
        const rgb = 'rgb(' + c.rgb.map(Number).join(',') + ')';
        if (which === 'fg')
            span.style.color = rgb;
        else
            span.style.backgroundColor = rgb;
    }
}

// Appends the rendering of text to parent: spans for styled runs, text nodes for the rest.
export function renderAnsi(parent, text, oneLine) {
    const a = new Fragments();
    a.ansi_to_html(visible(text, oneLine));
    for (const f of a.frags) {
        if (!f.bold && !f.faint && !f.italic && !f.underline && !f.fg && !f.bg) {
            parent.appendChild(document.createTextNode(f.text));
            continue;
        }
        const s = document.createElement('span');
        if (f.bold)
            s.classList.add('ansi-bold');
        if (f.faint)
            s.classList.add('ansi-faint');
        if (f.italic)
            s.classList.add('ansi-italic');
        if (f.underline)
            s.classList.add('ansi-underline');
        colour(s, f.fg, 'fg');
        colour(s, f.bg, 'bg');
        s.textContent = f.text;
        parent.appendChild(s);
    }
}

// A JSON value pretty-printed, as text (the caller puts it in a <pre> with textContent).
export function prettyJson(value) {
    return visible(JSON.stringify(value, null, 2), false);
}
