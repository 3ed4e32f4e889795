//! A small page-layout layer: pages as lists of drawing operations, text measured with the
//! embedded fonts, then written with krilla.
//!
//! Laying out first and drawing second lets every footer say "page X of Y" and keeps the PDF
//! byte-for-byte deterministic: no clock, no random ids, fonts embedded from the crate.
//!
//! Text may carry Markdown code spans (`mandate audit verify`, as the core's messages and audit
//! reasons write commands): they are measured and drawn in the monospace face, without the
//! backticks, in every width, wrap, fit and draw ([`runs`]). Text drawn in the monospace face
//! (ids, hashes) is taken as it is.
//!
//! What it is not: a general typesetter. Left-to-right Latin text, wrapped on spaces.

use std::collections::HashMap;
use std::sync::Arc;

use krilla::Document;
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::text::{Font, GlyphId, KrillaGlyph};
use skrifa::MetadataProvider;
use skrifa::instance::{LocationRef, Size};

use crate::ReportError;

/// A4 in points.
pub const PAGE_W: f32 = 595.0;
pub const PAGE_H: f32 = 842.0;
pub const MARGIN: f32 = 56.0;
pub const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN;
/// Where content stops, above the footer.
pub const BOTTOM: f32 = PAGE_H - 60.0;

static SANS: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
static SANS_BOLD: &[u8] = include_bytes!("../fonts/DejaVuSans-Bold.ttf");
static MONO: &[u8] = include_bytes!("../fonts/DejaVuSansMono.ttf");

/// Which embedded font.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Face {
    Sans,
    Bold,
    Mono,
}

/// An sRGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

pub const INK: Rgb = Rgb(0x1f, 0x29, 0x37);
pub const MUTED: Rgb = Rgb(0x6b, 0x72, 0x80);
pub const RULE: Rgb = Rgb(0xd1, 0xd5, 0xdb);
pub const BAND: Rgb = Rgb(0x0f, 0x2a, 0x4a);
pub const ACCENT: Rgb = Rgb(0x0f, 0x76, 0x6e);
pub const DENY: Rgb = Rgb(0xb9, 0x1c, 0x1c);
pub const OK_BG: Rgb = Rgb(0xec, 0xfd, 0xf5);
pub const BAD_BG: Rgb = Rgb(0xfe, 0xf2, 0xf2);
pub const ZEBRA: Rgb = Rgb(0xf3, 0xf4, 0xf6);
pub const WHITE: Rgb = Rgb(0xff, 0xff, 0xff);

/// One drawing operation. `y` grows downwards from the top of the page; for text it is the
/// baseline.
#[derive(Debug, Clone)]
pub enum Op {
    Text {
        x: f32,
        y: f32,
        size: f32,
        face: Face,
        color: Rgb,
        text: String,
    },
    Rect {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        color: Rgb,
    },
    Line {
        x1: f32,
        y1: f32,
        x2: f32,
        y2: f32,
        width: f32,
        color: Rgb,
    },
}

/// Glyph ids and advance widths (in em) of one font, per character. Text is laid out with
/// these directly (no shaping: the report is left-to-right Latin text, and skipping the shaper
/// makes a 100,000-event appendix several times faster).
#[derive(Debug)]
struct Metrics {
    latin: Vec<Option<(u32, f32)>>,
    other: HashMap<char, (u32, f32)>,
    fallback: f32,
}

impl Metrics {
    fn load(data: &[u8]) -> Result<Self, ReportError> {
        let font = skrifa::FontRef::new(data)
            .map_err(|_| ReportError::Render("an embedded font is unreadable".into()))?;
        let upem = f32::from(
            font.metrics(Size::unscaled(), LocationRef::default())
                .units_per_em,
        );
        let gm = font.glyph_metrics(Size::unscaled(), LocationRef::default());
        let mut latin = vec![None; 0x250];
        let mut other = HashMap::new();
        for (cp, gid) in font.charmap().mappings() {
            if let (Some(c), Some(w)) = (char::from_u32(cp), gm.advance_width(gid)) {
                let v = (gid.to_u32(), w / upem);
                match latin.get_mut(cp as usize) {
                    Some(slot) => *slot = Some(v),
                    None => {
                        other.insert(c, v);
                    }
                }
            }
        }
        let fallback = latin
            .get('n' as usize)
            .copied()
            .flatten()
            .map(|v| v.1)
            .unwrap_or(0.55);
        Ok(Metrics {
            latin,
            other,
            fallback,
        })
    }

    fn glyph(&self, c: char) -> Option<(u32, f32)> {
        match self.latin.get(c as usize) {
            Some(v) => *v,
            None => self.other.get(&c).copied(),
        }
    }

    fn width(&self, text: &str, size: f32) -> f32 {
        text.chars()
            .map(|c| self.glyph(c).map(|g| g.1).unwrap_or(self.fallback))
            .sum::<f32>()
            * size
    }

    fn glyphs(&self, text: &str) -> Vec<KrillaGlyph> {
        text.char_indices()
            .map(|(i, c)| {
                let (gid, adv) = self.glyph(c).unwrap_or((0, self.fallback));
                KrillaGlyph::new(
                    GlyphId::new(gid),
                    adv,
                    0.0,
                    0.0,
                    0.0,
                    i..i + c.len_utf8(),
                    None,
                )
            })
            .collect()
    }
}

/// The fonts, loaded once.
#[derive(Debug)]
pub struct Fonts {
    sans: (Font, Metrics),
    bold: (Font, Metrics),
    mono: (Font, Metrics),
}

impl Fonts {
    pub fn load() -> Result<Self, ReportError> {
        let load = |data: &'static [u8]| -> Result<(Font, Metrics), ReportError> {
            let font = Font::new(Arc::new(data.to_vec()).into(), 0)
                .ok_or_else(|| ReportError::Render("an embedded font is unreadable".into()))?;
            Ok((font, Metrics::load(data)?))
        };
        Ok(Fonts {
            sans: load(SANS)?,
            bold: load(SANS_BOLD)?,
            mono: load(MONO)?,
        })
    }

    fn get(&self, f: Face) -> &(Font, Metrics) {
        match f {
            Face::Sans => &self.sans,
            Face::Bold => &self.bold,
            Face::Mono => &self.mono,
        }
    }

    /// Width of `text` in points (code spans in the monospace face, without their backticks).
    pub fn width(&self, face: Face, size: f32, text: &str) -> f32 {
        runs(face, text)
            .iter()
            .map(|(f, t)| self.get(*f).1.width(t, size))
            .sum()
    }

    /// Cut `text` to fit `max` points, ending with an ellipsis when cut.
    pub fn fit(&self, face: Face, size: f32, text: &str, max: f32) -> String {
        if self.width(face, size, text) <= max {
            return text.to_string();
        }
        if marked(face, text) {
            return self.fit_marked(face, size, text, max);
        }
        let m = &self.get(face).1;
        let ell = m.width("…", size);
        let mut out = String::new();
        let mut w = 0.0;
        for c in text.chars() {
            let cw = m.width(c.encode_utf8(&mut [0; 4]), size);
            if w + cw + ell > max {
                break;
            }
            w += cw;
            out.push(c);
        }
        out.push('…');
        out
    }

    /// [`Fonts::fit`] for text with code spans: cut inside a span, the span is closed before
    /// the ellipsis, so the result is still balanced.
    fn fit_marked(&self, face: Face, size: f32, text: &str, max: f32) -> String {
        let ell = self.get(face).1.width("…", size);
        let mut out = String::new();
        let mut w = 0.0;
        'runs: for (f, t) in runs(face, text) {
            let code = f != face;
            if code {
                out.push('`');
            }
            let m = &self.get(f).1;
            for c in t.chars() {
                let cw = m.width(c.encode_utf8(&mut [0; 4]), size);
                if w + cw + ell > max {
                    if code {
                        out.push('`');
                    }
                    break 'runs;
                }
                w += cw;
                out.push(c);
            }
            if code {
                out.push('`');
            }
        }
        // An empty span left at the cut reads as nothing.
        let out = out.strip_suffix("``").map(str::to_string).unwrap_or(out);
        format!("{out}…")
    }

    /// Break `text` into lines no wider than `max` points. Each line of a text with code spans
    /// is balanced on its own: a span broken across lines is closed and reopened.
    pub fn wrap(&self, face: Face, size: f32, text: &str, max: f32) -> Vec<String> {
        if marked(face, text) {
            return self.wrap_marked(face, size, text, max);
        }
        let mut lines = Vec::new();
        for para in text.split('\n') {
            let mut line = String::new();
            for word in para.split(' ') {
                let candidate = if line.is_empty() {
                    word.to_string()
                } else {
                    format!("{line} {word}")
                };
                if self.width(face, size, &candidate) <= max || line.is_empty() {
                    line = candidate;
                } else {
                    lines.push(std::mem::take(&mut line));
                    line = word.to_string();
                }
            }
            lines.push(line);
        }
        lines
    }
}

impl Fonts {
    fn wrap_marked(&self, face: Face, size: f32, text: &str, max: f32) -> Vec<String> {
        let mut lines = Vec::new();
        for para in text.split('\n') {
            // Words as (code?, text) pieces; a space inside a span stays inside it.
            let mut words: Vec<Vec<(bool, String)>> = vec![Vec::new()];
            for (f, t) in runs(face, para) {
                let code = f != face;
                for (i, piece) in t.split(' ').enumerate() {
                    if i > 0 {
                        words.push(Vec::new());
                    }
                    if !piece.is_empty()
                        && let Some(w) = words.last_mut()
                    {
                        w.push((code, piece.to_string()));
                    }
                }
            }
            let mut line: Vec<(bool, String)> = Vec::new();
            for word in words.into_iter().filter(|w| !w.is_empty()) {
                let mut candidate = line.clone();
                if !candidate.is_empty() {
                    let code_both = candidate.last().is_some_and(|l| l.0) && word[0].0;
                    candidate.push((code_both, " ".into()));
                }
                candidate.extend(word.iter().cloned());
                if line.is_empty() || self.width(face, size, &serialize(&candidate)) <= max {
                    line = candidate;
                } else {
                    lines.push(serialize(&line));
                    line = word;
                }
            }
            lines.push(serialize(&line));
        }
        lines
    }
}

/// Whether `text` in `face` may hold code spans to honour.
fn marked(face: Face, text: &str) -> bool {
    face != Face::Mono && text.contains('`')
}

/// `text` in `face` as runs to draw: its `code` spans in [`Face::Mono`] (without backticks),
/// the rest in `face`. Backticks pair up left to right; an unpaired one is kept as a character.
pub fn runs(face: Face, text: &str) -> Vec<(Face, &str)> {
    if !marked(face, text) {
        return vec![(face, text)];
    }
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let Some(open) = rest.find('`') else {
            out.push((face, rest));
            break;
        };
        let Some(len) = rest[open + 1..].find('`') else {
            out.push((face, rest));
            break;
        };
        if open > 0 {
            out.push((face, &rest[..open]));
        }
        if len > 0 {
            out.push((Face::Mono, &rest[open + 1..open + 1 + len]));
        }
        rest = &rest[open + 1 + len + 1..];
    }
    out
}

/// Pieces back to marked text, neighbours of one kind merged into one run.
fn serialize(pieces: &[(bool, String)]) -> String {
    let mut out = String::new();
    let mut open = false;
    for (code, t) in pieces {
        if *code != open {
            out.push('`');
            open = *code;
        }
        out.push_str(t);
    }
    if open {
        out.push('`');
    }
    out
}

/// Pages being laid out, with a cursor.
#[derive(Debug)]
pub struct Pages<'f> {
    pub fonts: &'f Fonts,
    pub pages: Vec<Vec<Op>>,
    /// The running section title printed in each page's header.
    pub section: Vec<String>,
    pub y: f32,
}

impl<'f> Pages<'f> {
    pub fn new(fonts: &'f Fonts) -> Self {
        Pages {
            fonts,
            pages: Vec::new(),
            section: Vec::new(),
            y: MARGIN,
        }
    }

    /// Start a new page under `section`.
    pub fn page(&mut self, section: &str) {
        self.pages.push(Vec::new());
        self.section.push(section.to_string());
        self.y = MARGIN + 18.0;
    }

    /// Make sure `h` points fit below the cursor, else start a new page of the same section.
    pub fn need(&mut self, h: f32) -> bool {
        if self.y + h > BOTTOM {
            let s = self.section.last().cloned().unwrap_or_default();
            self.page(&s);
            return true;
        }
        false
    }

    pub fn op(&mut self, op: Op) {
        if self.pages.is_empty() {
            self.page("");
        }
        if let Some(p) = self.pages.last_mut() {
            p.push(op);
        }
    }

    pub fn text(&mut self, x: f32, y: f32, size: f32, face: Face, color: Rgb, text: &str) {
        self.op(Op::Text {
            x,
            y,
            size,
            face,
            color,
            text: text.to_string(),
        });
    }

    pub fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, color: Rgb) {
        self.op(Op::Rect { x, y, w, h, color });
    }

    pub fn hline(&mut self, x1: f32, x2: f32, y: f32, width: f32, color: Rgb) {
        self.op(Op::Line {
            x1,
            y1: y,
            x2,
            y2: y,
            width,
            color,
        });
    }

    /// A wrapped paragraph at the cursor.
    pub fn para(&mut self, size: f32, face: Face, color: Rgb, text: &str, indent: f32) {
        let lead = size * 1.45;
        for line in self.fonts.wrap(face, size, text, CONTENT_W - indent) {
            self.need(lead);
            self.y += lead;
            self.text(MARGIN + indent, self.y, size, face, color, &line);
        }
    }

    /// A section heading at the cursor.
    pub fn heading(&mut self, text: &str, size: f32) {
        self.need(size * 3.0);
        self.y += size * 1.9;
        self.text(MARGIN, self.y, size, Face::Bold, INK, text);
        self.y += 6.0;
        self.hline(MARGIN, MARGIN + CONTENT_W, self.y, 0.6, RULE);
    }
}

fn color(c: Rgb) -> krilla::paint::Paint {
    rgb::Color::new(c.0, c.1, c.2).into()
}

fn fill(c: Rgb) -> Fill {
    Fill {
        paint: color(c),
        opacity: NormalizedF32::ONE,
        rule: Default::default(),
    }
}

/// Write the pages as PDF with krilla. `decorate(page index, count)` adds the ops of the
/// running header and footer; `progress(done, total)` is called per page.
pub fn render(
    doc: &mut Document,
    fonts: &Fonts,
    pages: &[Vec<Op>],
    decorate: &dyn Fn(usize, usize) -> Vec<Op>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(), ReportError> {
    let settings = PageSettings::from_wh(PAGE_W, PAGE_H)
        .ok_or_else(|| ReportError::Render("bad page size".into()))?;
    let total = pages.len();
    for (i, ops) in pages.iter().enumerate() {
        let mut page = doc.start_page_with(settings.clone());
        let mut s = page.surface();
        let extra = decorate(i, total);
        for op in ops.iter().chain(extra.iter()) {
            match op {
                Op::Text {
                    x,
                    y,
                    size,
                    face,
                    color: c,
                    text,
                } => {
                    if text.is_empty() {
                        continue;
                    }
                    s.set_fill(Some(fill(*c)));
                    let mut at = *x;
                    for (f, t) in runs(*face, text) {
                        let (font, metrics) = fonts.get(f);
                        s.draw_glyphs(
                            Point::from_xy(at, *y),
                            &metrics.glyphs(t),
                            font.clone(),
                            t,
                            *size,
                            false,
                        );
                        at += metrics.width(t, *size);
                    }
                }
                Op::Rect {
                    x,
                    y,
                    w,
                    h,
                    color: c,
                } => {
                    let mut pb = PathBuilder::new();
                    if let Some(r) = Rect::from_xywh(*x, *y, w.max(0.01), h.max(0.01)) {
                        pb.push_rect(r);
                    }
                    if let Some(path) = pb.finish() {
                        s.set_stroke(None);
                        s.set_fill(Some(fill(*c)));
                        s.draw_path(&path);
                    }
                }
                Op::Line {
                    x1,
                    y1,
                    x2,
                    y2,
                    width,
                    color: c,
                } => {
                    let mut pb = PathBuilder::new();
                    pb.move_to(*x1, *y1);
                    pb.line_to(*x2, *y2);
                    if let Some(path) = pb.finish() {
                        s.set_fill(None);
                        s.set_stroke(Some(Stroke {
                            paint: color(*c),
                            width: *width,
                            ..Default::default()
                        }));
                        s.draw_path(&path);
                        s.set_stroke(None);
                    }
                }
            }
        }
        s.finish();
        page.finish();
        progress(i as u64 + 1, total as u64);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn code_spans_are_mono_runs_without_backticks_and_a_lone_backtick_stays() {
        assert_eq!(
            runs(Face::Sans, "Run `mandate audit verify` now"),
            vec![
                (Face::Sans, "Run "),
                (Face::Mono, "mandate audit verify"),
                (Face::Sans, " now")
            ]
        );
        assert_eq!(
            runs(Face::Sans, "it's `odd"),
            vec![(Face::Sans, "it's `odd")]
        );
        assert_eq!(runs(Face::Mono, "`x`"), vec![(Face::Mono, "`x`")]);
    }

    #[test]
    fn widths_wraps_and_fits_measure_what_is_drawn_and_stay_balanced() {
        let fonts = Fonts::load().unwrap();
        let marked = "Run `mandate audit verify` now";
        let plain = fonts.width(Face::Sans, 9.0, "Run ")
            + fonts.width(Face::Mono, 9.0, "mandate audit verify")
            + fonts.width(Face::Sans, 9.0, " now");
        assert!((fonts.width(Face::Sans, 9.0, marked) - plain).abs() < 0.01);
        let text = "How to check: run `mandate audit verify <this file>` where the file is, \
                    or `mandate audit export --format pdf` for a new one.";
        for max in [60.0, 120.0, 200.0] {
            for line in fonts.wrap(Face::Sans, 8.5, text, max) {
                assert_eq!(line.matches('`').count() % 2, 0, "{line:?}");
                assert!(!line.contains("``"), "{line:?}");
                if line.contains(' ') {
                    assert!(
                        fonts.width(Face::Sans, 8.5, &line) <= max + 0.01,
                        "{line:?}"
                    );
                }
            }
            let cut = fonts.fit(Face::Sans, 8.5, text, max);
            assert_eq!(cut.matches('`').count() % 2, 0, "{cut:?}");
            assert!(cut.ends_with('…'));
        }
        let joined: String = fonts
            .wrap(Face::Sans, 8.5, text, 120.0)
            .iter()
            .flat_map(|l| runs(Face::Sans, l).into_iter().map(|(_, t)| t.to_string()))
            .collect::<Vec<_>>()
            .join(" ");
        assert!(joined.contains("mandate audit"), "{joined}");
        assert!(!joined.contains('`'), "{joined}");
    }
}
