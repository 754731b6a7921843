//! Sharing the machine console's physical lines among partitions.
//!
//! Every partition's vty output is shown behind its `[<name>] ` prefix, and a
//! physical line only ever holds one partition's text. Whole lines are the
//! normal unit: a partition's bytes are kept ([`VtyLine`]) until a newline
//! completes them. An unfinished line (a shell prompt, the echo of a key) can
//! also be *shown* ([`Lines::show`]): it goes out with its prefix but without a
//! newline, and that partition then *owns the open line*. While it does, its
//! further bytes continue the same physical line at once, without a second
//! prefix. Anyone else who needs the console (another partition's line, a
//! hypervisor log line, [`Lines::interrupt`]) first ends the open line with a
//! newline; the owner's next bytes then start a fresh prefixed line.
//!
//! A physical line holds at most [`LINE`] bytes of text: a longer line is cut
//! there, as if a newline had come. CR and NUL are dropped (the prefix would
//! otherwise be overwritten on a terminal).
//!
//! Guests' text is made inert ([`render`]): a partition must not be able to move
//! the operator's cursor (and so overwrite another partition's or the
//! hypervisor's lines), query the terminal (whose reply would be typed into
//! whichever partition takes input) or set its title or clipboard. Every C0
//! control except TAB and newline, and DEL, is shown in caret notation (`ESC` as
//! `^[`, backspace as `^H`); a C1 control sent raw (0x80-0x9f not continuing a
//! UTF-8 character, including U+0080-U+009F encoded as `C2 xx`) as `\xNN`.
//! Other bytes, UTF-8 text included, pass unchanged.
//!
//! When to show an unfinished line is the caller's policy (the hypervisor shows
//! only the input partition's, once the partition is quiet); this module only
//! keeps the physical lines straight. It is pure logic: output goes to the
//! `out` function given, and the caller serialises all calls (the log's line
//! lock, see [`STATE`]).

/// Longest text of one physical line (without prefix and newline).
pub const LINE: usize = 240;

/// Which partition a line belongs to: an id unique among partitions (the LPID)
/// and the name in its prefix.
#[derive(Clone, Copy, Debug)]
pub struct Who<'a> {
    pub id: u32,
    pub name: &'a str,
    /// `[<name>] `, what [`prefix`] writes, kept whole for the one-line case.
    pub prefix: &'a str,
}

/// The console-wide state: whose unfinished line is on the screen, if anyone's.
#[derive(Debug, Default)]
pub struct Lines {
    open: Option<Open>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Open {
    owner: u32,
    /// Text bytes already on the open physical line.
    len: usize,
}

/// The console state, shared by log lines and every partition. Taken while
/// holding the log's line lock (`log`), except by the hcall fast path, which
/// `try_lock`s it alone to queue one whole line when [`Lines::is_whole_line`]
/// (a complete physical line cannot split anything: log lines go to the ring in
/// one piece too).
pub static STATE: spin::Mutex<Lines> = spin::Mutex::new(Lines { open: None });

/// One partition's text not yet on the console.
#[derive(Debug, Default)]
pub struct VtyLine {
    buf: heapless::Vec<u8, LINE>,
    /// The partition's previous byte (as sent), for [`render`]: whether a byte
    /// 0x80-0x9f continues a UTF-8 character.
    prev: u8,
    /// Bytes the partition sent so far (counted by the caller, [`Self::count`]).
    sent: u64,
}

impl VtyLine {
    pub const fn new() -> Self {
        VtyLine {
            buf: heapless::Vec::new(),
            prev: 0,
            sent: 0,
        }
    }

    /// Counts `n` more bytes sent by the partition (for its statistics; kept
    /// here because every writer holds this line's lock anyway).
    pub fn count(&mut self, n: usize) {
        self.sent = self.sent.wrapping_add(n as u64);
    }

    /// Bytes counted by [`Self::count`].
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Whether some text waits to be shown.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// Most bytes one byte of guest text takes once rendered (`\xNN`).
pub const RENDER_MAX: usize = 4;

/// How guest byte `b` is shown, `prev` being the byte the guest sent before it:
/// itself, or an inert spelling of a control character (see the module doc).
/// Returns the bytes and how many of them are used.
pub fn render(b: u8, prev: u8) -> ([u8; RENDER_MAX], usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match b {
        b'\t' | 0x20..=0x7e | 0xa0..=0xff => ([b, 0, 0, 0], 1),
        // A UTF-8 continuation byte of a character above U+009F: the lead byte
        // before it is 0xC3-0xF4, or it follows another continuation byte.
        0x80..=0x9f if matches!(prev, 0x80..=0xbf | 0xc3..=0xf4) => ([b, 0, 0, 0], 1),
        0x80..=0x9f => (
            [
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ],
            4,
        ),
        // C0 controls and DEL in caret notation: ^@ .. ^_, ^?.
        _ => ([b'^', b ^ 0x40, 0, 0], 2),
    }
}

/// Whether `b` is shown as itself whatever came before it (the whole-line fast
/// path takes only such text).
fn plain(b: u8) -> bool {
    matches!(b, b'\t' | 0x20..=0x7e | 0xa0..=0xff)
}

/// Most bytes one [`Lines::put`] of `bytes` can write for a partition named
/// `name`: each newline, and each [`LINE`] bytes without one, can complete a
/// line, which costs at most a newline ending someone else's open line, the
/// prefix, the text and its newline; a continued open line costs less.
pub fn put_bound(name: &str, bytes: &[u8]) -> usize {
    let lines = bytes.iter().filter(|&&b| b == b'\n').count() + bytes.len() * RENDER_MAX / LINE + 1;
    lines * line_bound(name)
}

/// Most bytes one physical line of partition `name` takes, with the newline
/// that may end another's open line first.
pub fn line_bound(name: &str) -> usize {
    1 + name.len() + 3 + LINE + 1
}

impl Lines {
    /// Partition `who`'s vty output: completed lines go out, the rest waits in
    /// `line`, except that while `who` owns the open line, its bytes continue it
    /// at once.
    pub fn put(&mut self, who: Who, line: &mut VtyLine, bytes: &[u8], out: &mut dyn FnMut(&[u8])) {
        if self.is_whole_line(line, bytes) {
            out(who.prefix.as_bytes());
            out(bytes);
            Self::whole_line_sent(line);
            return;
        }
        self.put_bytes(who, line, bytes, out);
    }

    /// [`Self::put`] a byte at a time (what the whole-line case must equal).
    fn put_bytes(
        &mut self,
        who: Who,
        line: &mut VtyLine,
        bytes: &[u8],
        out: &mut dyn FnMut(&[u8]),
    ) {
        for &b in bytes {
            match b {
                b'\n' => self.finish(who, line, out),
                b'\r' | 0 => {}
                _ => {
                    let (shown, n) = render(b, line.prev);
                    if self.used(who) + line.buf.len() + n > LINE {
                        self.finish(who, line, out);
                    }
                    // Cannot fail: the check above leaves room.
                    let _ = line.buf.extend_from_slice(&shown[..n]);
                }
            }
            line.prev = b;
        }
        if self.owns(who) {
            self.show(who, line, out);
        }
    }

    /// The common case without the byte loop: `bytes` is exactly one line
    /// (text and its newline, not empty, shorter than [`LINE`], only bytes shown
    /// as themselves whatever precedes them: no control character), nothing of
    /// `who`'s waits and no line is open. Then [`Self::put`] writes exactly
    /// `who.prefix` followed by `bytes`, which the caller may queue itself (and
    /// then calls [`Self::whole_line_sent`]).
    pub fn is_whole_line(&self, line: &VtyLine, bytes: &[u8]) -> bool {
        let Some((&b'\n', text)) = bytes.split_last() else {
            return false;
        };
        self.open.is_none()
            && line.buf.is_empty()
            // An empty line shows nothing (see `finish`).
            && !text.is_empty()
            && text.len() < LINE
            && text.iter().all(|&b| plain(b))
    }

    /// After the caller queued a whole line itself ([`Self::is_whole_line`]):
    /// keeps `line` as [`Self::put`] would have left it.
    pub fn whole_line_sent(line: &mut VtyLine) {
        line.prev = b'\n';
    }

    /// Shows `who`'s unfinished line now: it continues `who`'s open line, or
    /// starts a prefixed line (ending anyone else's first) that `who` then owns.
    pub fn show(&mut self, who: Who, line: &mut VtyLine, out: &mut dyn FnMut(&[u8])) {
        if line.buf.is_empty() {
            return;
        }
        if !self.owns(who) {
            self.interrupt(out);
            prefix(who, out);
            self.open = Some(Open {
                owner: who.id,
                len: 0,
            });
        }
        out(&line.buf);
        if let Some(o) = self.open.as_mut() {
            o.len += line.buf.len();
        }
        line.buf.clear();
    }

    /// Ends `who`'s line, as a newline would: what waits in `line` goes out,
    /// continuing `who`'s open line or on a line of its own. Nothing happens if
    /// `who` has neither waiting text nor the open line.
    pub fn finish(&mut self, who: Who, line: &mut VtyLine, out: &mut dyn FnMut(&[u8])) {
        if self.owns(who) {
            out(&line.buf);
            out(b"\n");
            self.open = None;
        } else if !line.buf.is_empty() {
            self.interrupt(out);
            prefix(who, out);
            out(&line.buf);
            out(b"\n");
        }
        line.buf.clear();
    }

    /// Ends whatever line is open, so something else (a log line) can start at
    /// the beginning of a physical line.
    pub fn interrupt(&mut self, out: &mut dyn FnMut(&[u8])) {
        if self.open.take().is_some() {
            out(b"\n");
        }
    }

    /// Whether partition `id` owns the open line.
    pub fn is_open(&self, id: u32) -> bool {
        self.open.is_some_and(|o| o.owner == id)
    }

    fn owns(&self, who: Who) -> bool {
        self.is_open(who.id)
    }

    /// Text `who` has on the open line (0 unless it owns it).
    fn used(&self, who: Who) -> usize {
        match self.open {
            Some(o) if o.owner == who.id => o.len,
            _ => 0,
        }
    }
}

fn prefix(who: Who, out: &mut dyn FnMut(&[u8])) {
    out(b"[");
    out(who.name.as_bytes());
    out(b"] ");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::XorShift;

    #[test]
    fn whole_line_shortcut_writes_what_the_byte_loop_writes() {
        // Random traffic from two partitions, some of it shown unfinished: the
        // shortcut must never change a byte of the output.
        let mut rng = XorShift::new(0x5eed_1234);
        let (mut fast, mut slow) = (Lines::default(), Lines::default());
        let (mut lf, mut ls) = (
            [VtyLine::new(), VtyLine::new()],
            [VtyLine::new(), VtyLine::new()],
        );
        let (mut of, mut os) = (Vec::new(), Vec::new());
        let alphabet = b"ab \n\r\0x\x1b\x08\x7f\x85\x9b\xc2\xc3\xe2\xa9\t";
        for _ in 0..20_000 {
            let who = if rng.next_u64().is_multiple_of(2) {
                0
            } else {
                1
            };
            let w = [A, B][who];
            let len = (rng.next_u64() % 20) as usize;
            let mut bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[(rng.next_u64() % alphabet.len() as u64) as usize])
                .collect();
            if rng.next_u64().is_multiple_of(2) {
                bytes.retain(|&b| b != b'\n' && b != b'\r' && b != 0);
                if rng.next_u64().is_multiple_of(2) {
                    bytes.retain(|&b| plain(b));
                }
                bytes.push(b'\n');
            }
            fast.put(w, &mut lf[who], &bytes, &mut |b| of.extend_from_slice(b));
            slow.put_bytes(w, &mut ls[who], &bytes, &mut |b| os.extend_from_slice(b));
            if rng.next_u64().is_multiple_of(7) {
                fast.show(w, &mut lf[who], &mut |b| of.extend_from_slice(b));
                slow.show(w, &mut ls[who], &mut |b| os.extend_from_slice(b));
            }
            if of != os {
                let at = of
                    .iter()
                    .zip(&os)
                    .position(|(a, b)| a != b)
                    .unwrap_or(of.len().min(os.len()));
                panic!(
                    "differ after {:?} from {who}: fast {:?} slow {:?}",
                    String::from_utf8_lossy(&bytes),
                    String::from_utf8_lossy(&of[at.saturating_sub(30)..]),
                    String::from_utf8_lossy(&os[at.saturating_sub(30)..])
                );
            }
        }
        assert!(Lines::default().is_whole_line(&VtyLine::new(), b"hello\n"));
        assert!(!Lines::default().is_whole_line(&VtyLine::new(), b"hello"));
        assert!(!Lines::default().is_whole_line(&VtyLine::new(), b"he\rllo\n"));
        assert!(!Lines::default().is_whole_line(&VtyLine::new(), b"a\nb\n"));
        assert!(!Lines::default().is_whole_line(&VtyLine::new(), b"\n"));
    }
    use alloc::string::String;
    use alloc::vec::Vec;

    const A: Who = Who {
        id: 1,
        name: "a",
        prefix: "[a] ",
    };
    const B: Who = Who {
        id: 2,
        name: "bb",
        prefix: "[bb] ",
    };

    /// A console with two partitions, collecting what is written.
    struct Console {
        lines: Lines,
        a: VtyLine,
        b: VtyLine,
        out: Vec<u8>,
    }

    impl Console {
        fn new() -> Self {
            Console {
                lines: Lines::default(),
                a: VtyLine::new(),
                b: VtyLine::new(),
                out: Vec::new(),
            }
        }

        fn parts(&mut self, who: Who) -> (&mut Lines, &mut VtyLine, impl FnMut(&[u8]) + '_) {
            let line = if who.id == A.id {
                &mut self.a
            } else {
                &mut self.b
            };
            let out = &mut self.out;
            (&mut self.lines, line, move |b: &[u8]| {
                out.extend_from_slice(b)
            })
        }

        fn put(&mut self, who: Who, bytes: &str) -> usize {
            let before = self.out.len();
            {
                let (lines, line, mut out) = self.parts(who);
                lines.put(who, line, bytes.as_bytes(), &mut out);
            }
            self.out.len() - before
        }

        fn show(&mut self, who: Who) {
            let (lines, line, mut out) = self.parts(who);
            lines.show(who, line, &mut out);
        }

        fn finish(&mut self, who: Who) {
            let (lines, line, mut out) = self.parts(who);
            lines.finish(who, line, &mut out);
        }

        fn log(&mut self, text: &str) {
            let out = &mut self.out;
            self.lines.interrupt(&mut |b| out.extend_from_slice(b));
            self.out.extend_from_slice(text.as_bytes());
        }

        fn text(&self) -> String {
            String::from_utf8(self.out.clone()).unwrap()
        }
    }

    #[test]
    fn whole_lines_are_prefixed_and_unfinished_text_waits() {
        let mut c = Console::new();
        c.put(A, "hello\r\nwor");
        assert_eq!(c.text(), "[a] hello\n");
        c.put(A, "ld\n");
        assert_eq!(c.text(), "[a] hello\n[a] world\n");
        assert!(!c.lines.is_open(A.id));
    }

    #[test]
    fn shown_prompt_is_continued_by_echo_and_output() {
        let mut c = Console::new();
        c.put(A, "/ # ");
        c.show(A);
        assert_eq!(c.text(), "[a] / # ");
        assert!(c.lines.is_open(A.id));
        // The owner's bytes go out at once, without a second prefix.
        c.put(A, "e");
        c.put(A, "cho hi");
        assert_eq!(c.text(), "[a] / # echo hi");
        c.put(A, "\r\nhi\r\n/ # ");
        assert_eq!(c.text(), "[a] / # echo hi\n[a] hi\n");
        assert!(!c.lines.is_open(A.id));
        c.show(A);
        c.show(A); // nothing new: no second prefix
        assert_eq!(c.text(), "[a] / # echo hi\n[a] hi\n[a] / # ");
    }

    #[test]
    fn others_end_the_open_line_first() {
        let mut c = Console::new();
        c.put(A, "/ # ec");
        c.show(A);
        c.put(B, "boot message\n");
        assert_eq!(c.text(), "[a] / # ec\n[bb] boot message\n");
        // A's next bytes start a fresh prefixed line, kept until shown or ended.
        c.put(A, "ho");
        assert_eq!(c.text(), "[a] / # ec\n[bb] boot message\n");
        c.put(A, " x\n");
        assert_eq!(c.text(), "[a] / # ec\n[bb] boot message\n[a] ho x\n");
    }

    #[test]
    fn log_lines_end_the_open_line() {
        let mut c = Console::new();
        c.put(A, "login: ");
        c.show(A);
        c.log("[ 1.0] cpu 0/hv INFO  PAPRIKA console: input -> a\n");
        c.put(A, "root\n");
        assert_eq!(
            c.text(),
            "[a] login: \n[ 1.0] cpu 0/hv INFO  PAPRIKA console: input -> a\n[a] root\n"
        );
        // Nothing open: a log line adds no newline.
        c.log("x\n");
        assert!(c.text().ends_with("[a] root\nx\n"));
    }

    #[test]
    fn a_shown_line_moves_between_partitions() {
        let mut c = Console::new();
        c.put(A, "a> ");
        c.put(B, "b> ");
        c.show(A);
        c.show(B);
        c.put(B, "1");
        c.show(A); // nothing waits for A: B keeps the line
        c.put(A, "2");
        c.show(A);
        assert_eq!(c.text(), "[a] a> \n[bb] b> 1\n[a] 2");
    }

    #[test]
    fn finish_ends_waiting_or_open_text_only() {
        let mut c = Console::new();
        c.finish(A);
        assert_eq!(c.text(), "");
        c.put(A, "partial");
        c.finish(A);
        assert_eq!(c.text(), "[a] partial\n");
        c.put(A, "p");
        c.show(A);
        c.finish(A);
        assert_eq!(c.text(), "[a] partial\n[a] p\n");
        c.finish(A);
        assert_eq!(c.text(), "[a] partial\n[a] p\n");
    }

    #[test]
    fn long_lines_are_cut_at_line_even_when_continued() {
        let mut c = Console::new();
        let long: String = (0..LINE + 10)
            .map(|i| (b'a' + (i % 26) as u8) as char)
            .collect();
        c.put(A, &long);
        c.put(A, "\n");
        let t = c.text();
        let l: Vec<&str> = t.lines().collect();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].len(), 4 + LINE);
        assert_eq!(format!("{}{}", &l[0][4..], &l[1][4..]), long);

        // Continued: the shown part counts against the same limit.
        let mut c = Console::new();
        c.put(A, &long[..100]);
        c.show(A);
        c.put(A, &long[100..]);
        c.put(A, "\n");
        let t = c.text();
        let l: Vec<&str> = t.lines().collect();
        assert_eq!(l.len(), 2, "{t}");
        assert_eq!(l[0].len(), 4 + LINE);
        assert_eq!(format!("{}{}", &l[0][4..], &l[1][4..]), long);
    }

    #[test]
    fn cr_and_nul_are_dropped_on_every_path() {
        let mut c = Console::new();
        c.put(A, "a\r\0b");
        c.show(A);
        c.put(A, "\rc\0d\r");
        c.put(A, "\r\n");
        assert_eq!(c.text(), "[a] abcd\n");
    }

    #[test]
    fn control_characters_are_inert() {
        // The audit's injection: cursor up, erase line and a forged line of
        // another partition; a cursor-position query; a raw CSI (C1).
        let mut c = Console::new();
        c.put(A, "\x1b[1A\x1b[2K[bb] GUEST-DONE passed=9 failed=0\n");
        {
            let (lines, line, mut out) = c.parts(A);
            lines.put(A, line, b"\x1b[6n\x07\x08\x7f\x9b31m\n", &mut out);
        }
        c.put(A, "caf\u{e9} \u{20ac} \u{9b}x\ttab\n");
        let want = "[a] ^[[1A^[[2K[bb] GUEST-DONE passed=9 failed=0\n\
             [a] ^[[6n^G^H^?\\x9b31m\n\
             [a] caf\u{e9} \u{20ac} @\\x9bx\ttab\n"
            .replace('@', "\u{c2}");
        let mut want = want.into_bytes();
        // U+00C2 is C3 82 in the expectation; the guest sent the lone lead byte C2.
        let at = want.windows(2).position(|w| w == [0xc3, 0x82]).unwrap();
        want.splice(at..at + 2, [0xc2]);
        assert_eq!(
            String::from_utf8_lossy(&c.out),
            String::from_utf8_lossy(&want)
        );
        // No byte that starts a terminal sequence reaches the console.
        assert!(!c.out.contains(&0x1b));
        // The same when the bytes come one hcall at a time, across a shown line.
        let mut d = Console::new();
        for &b in b"\x1b[1A\xc2" {
            let (lines, line, mut out) = d.parts(A);
            lines.put(A, line, &[b], &mut out);
        }
        d.show(A);
        {
            let (lines, line, mut out) = d.parts(A);
            lines.put(A, line, &[0x9b, b'\n'], &mut out);
        }
        assert_eq!(d.out, b"[a] ^[[1A\xc2\\x9b\n");
    }

    #[test]
    fn render_table() {
        assert_eq!(render(0x1b, 0), ([b'^', b'[', 0, 0], 2));
        assert_eq!(render(0x7f, 0).0[..2], *b"^?");
        assert_eq!(render(0x00, 0).0[..2], *b"^@");
        assert_eq!(render(b'\t', 0), ([b'\t', 0, 0, 0], 1));
        assert_eq!(render(0x9b, b'a'), (*b"\\x9b", 4));
        assert_eq!(render(0x9b, 0xc2), (*b"\\x9b", 4));
        assert_eq!(render(0x82, 0xe2).1, 1);
        assert_eq!(render(0x85, 0xc3).1, 1);
        assert_eq!(render(0xc2, 0).1, 1);
        for b in 0..=255u8 {
            for prev in [0u8, b'a', 0xc2, 0xc3, 0xe2, 0x80, 0xff] {
                let (r, n) = render(b, prev);
                assert!(n <= RENDER_MAX);
                // Inert: no C0 (but TAB), DEL or raw C1 unless continuing UTF-8.
                for &x in &r[..n] {
                    assert!(x == b'\t' || x >= 0x20 && x != 0x7f, "{b:#x}");
                }
                if plain(b) {
                    assert_eq!((r[0], n), (b, 1));
                }
            }
        }
    }

    /// Random traffic from two partitions, with shows and log lines: every
    /// physical line carries exactly one prefix or is a log line, and each
    /// partition's text comes out complete and in order.
    #[test]
    fn random_traffic_keeps_lines_whole_and_text_in_order() {
        let mut c = Console::new();
        let mut sent = [String::new(), String::new()];
        let mut rng = XorShift::new(0x9e37_79b9);
        for step in 0..20_000 {
            let r = rng.next_u32();
            let who = if r & 1 == 0 { A } else { B };
            match (r >> 1) % 8 {
                0 => c.show(who),
                1 => c.log("LOG\n"),
                2 if step % 97 == 0 => c.finish(who),
                _ => {
                    let n = (r >> 8) as usize % 17;
                    let mut s = String::new();
                    for k in 0..n {
                        let v = rng.below(40);
                        s.push(match v {
                            0..=4 => '\n',
                            5 => '\r',
                            _ => (b'a' + ((step + k) % 26) as u8) as char,
                        });
                    }
                    let bound = put_bound(who.name, s.as_bytes());
                    assert!(c.put(who, &s) <= bound);
                    sent[(who.id - 1) as usize].push_str(&s.replace('\r', ""));
                }
            }
        }
        c.finish(A);
        c.finish(B);
        let t = c.text();
        let mut got = [String::new(), String::new()];
        for l in t.lines() {
            if l == "LOG" {
                continue;
            }
            let (i, rest) = if let Some(r) = l.strip_prefix("[a] ") {
                (0, r)
            } else {
                (1, l.strip_prefix("[bb] ").expect(l))
            };
            assert!(!rest.contains('[') && rest.len() <= LINE, "{l}");
            got[i].push_str(rest);
        }
        for i in 0..2 {
            let want: String = sent[i].chars().filter(|&ch| ch != '\n').collect();
            assert_eq!(got[i], want);
        }
    }
}
