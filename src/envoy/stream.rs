//! Big admin outputs cut down as they are read, a piece at a time, never held whole.
//!
//! A caller's config dump and `/clusters` on a big mesh run to a hundred MB, nearly all of it
//! in a few long lists (clusters, their endpoints, their hosts' statuses) of which a question
//! reads a handful of elements. [`filter`] copies a JSON document's structure and hands each
//! element of the lists its [`Route`] marks to a judge, which keeps it, puts a stub in its
//! place, or drops it, knowing the name of the resource that holds the list when it comes
//! first (an object's `name` is always copied as it is); [`lines`] cuts a line-based form in
//! pieces that end at a line's end.
//!
//! Every value is still parsed by serde_json and checked to be UTF-8, so a file that is not
//! valid stops the reading (`None`), and its caller reads it whole and says what is wrong.

use serde::Deserialize;
use serde_json::Deserializer;
use std::io::Read;

/// What is read of the input at a time; a value longer than what is held is read in more,
/// twice as much each time, so it is parsed at most about twice over.
pub const PIECE: usize = 1 << 20;

/// What becomes of a value, by the object keys that lead to it (`[]` for an array's element).
pub enum Route {
    /// Copied as it is.
    Copy,
    /// An object or array whose values are routed in turn (any other value is copied).
    Descend,
    /// An array whose elements are judged one at a time (any other value is copied).
    Elements,
}

/// What becomes of an element of a list that is judged.
pub enum Verdict {
    /// Copied as it is.
    Keep,
    /// Replaced by this text.
    Stub(String),
    /// Left out.
    Drop,
}

/// Parses the value at the start of some bytes: the bytes it took, and what was made of it.
type Parse<'p, T> = dyn FnMut(&[u8]) -> serde_json::Result<(usize, T)> + 'p;

/// Judges an element of a list at the start of some bytes, given the list's key and its
/// owner: the `name` of the object that holds the list, when it comes before the list (as
/// Envoy writes a resource's name first).
type Judge<'j> = dyn FnMut(&str, Option<&str>, &[u8]) -> serde_json::Result<(usize, Verdict)> + 'j;

/// The value of type `T` at the start of `held` (after whitespace), and the bytes it took.
pub fn value_at<'a, T: Deserialize<'a>>(held: &'a [u8]) -> serde_json::Result<(usize, T)> {
    let mut values = Deserializer::from_slice(held).into_iter::<T>();
    let value = values.next().unwrap_or_else(|| Err(serde::de::Error::custom("no value")))?;
    Ok((values.byte_offset(), value))
}

/// The JSON document read from `input` in pieces of `piece` bytes, with each element of a list
/// `route` marks put through `judge` (it says how many bytes the element took, and what
/// becomes of it).
pub fn filter(input: impl Read, piece: usize, route: &dyn Fn(&[&str]) -> Route, judge: &mut Judge<'_>) -> Option<String> {
    let mut reader = Reader::new(input, piece);
    reader.value(&mut Vec::new(), route, judge).ok()?;
    match reader.peek() {
        Ok(None) => Some(reader.out),
        _ => None,
    }
}

/// The text read from `input` in pieces of about `piece` bytes that end at a line's end, each
/// put through `cut`, and the results joined: for a form whose lines are cut one by one.
pub fn lines(input: impl Read, piece: usize, mut cut: impl FnMut(&str) -> Option<String>) -> Option<String> {
    let mut reader = Reader::new(input, piece);
    loop {
        let more = reader.more().ok()?;
        let held = &reader.buf[reader.pos..];
        let end = if more { held.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1) } else { held.len() };
        let text = std::str::from_utf8(&held[..end]).ok()?;
        reader.out.push_str(&cut(text)?);
        reader.pos += end;
        if !more {
            return Some(reader.out);
        }
    }
}

/// Why a reading stopped: the input is not what it can cut (or could not be read).
struct Stop;

type Step<T> = Result<T, Stop>;

/// A document being read: `buf[pos..]` is read but not yet taken.
struct Reader<R> {
    input: R,
    piece: usize,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    out: String,
    /// The `name` read so far of each object being read, innermost last.
    owners: Vec<Option<String>>,
}

impl<R: Read> Reader<R> {
    fn new(input: R, piece: usize) -> Reader<R> {
        Reader { input, piece: piece.max(1), buf: Vec::new(), pos: 0, eof: false, out: String::new(), owners: Vec::new() }
    }

    /// Reads more of the input after what is held and not taken (at least as much again);
    /// `false` once it is all read.
    fn more(&mut self) -> Step<bool> {
        if self.eof {
            return Ok(false);
        }
        self.buf.drain(..self.pos);
        self.pos = 0;
        let want = self.buf.len().max(self.piece);
        let read = (&mut self.input).take(want as u64).read_to_end(&mut self.buf).map_err(|_| Stop)?;
        self.eof = read < want;
        Ok(read > 0)
    }

    /// The next byte after whitespace, not taken; `None` at the end of the input.
    fn peek(&mut self) -> Step<Option<u8>> {
        loop {
            while let Some(&b) = self.buf.get(self.pos) {
                if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                    return Ok(Some(b));
                }
                self.pos += 1;
            }
            if !self.more()? {
                return Ok(None);
            }
        }
    }

    /// Takes the byte `b` (after whitespace), and copies it.
    fn expect(&mut self, b: u8) -> Step<()> {
        if self.peek()? != Some(b) {
            return Err(Stop);
        }
        self.pos += 1;
        self.out.push(char::from(b));
        Ok(())
    }

    /// Takes the next value with `parse`, reading more until it is whole: where it lies in
    /// `buf`, and what was made of it.
    fn parse<T>(&mut self, parse: &mut Parse<'_, T>) -> Step<(usize, usize, T)> {
        self.peek()?.ok_or(Stop)?;
        loop {
            let held = &self.buf[self.pos..];
            match parse(held) {
                // A value that ends where the bytes held end (a number) may go on in those to come.
                Ok((took, made)) if took < held.len() || self.eof => {
                    std::str::from_utf8(&held[..took]).map_err(|_| Stop)?;
                    let start = self.pos;
                    self.pos += took;
                    return Ok((start, self.pos, made));
                }
                Ok(_) => {}
                Err(e) if e.is_eof() && !self.eof => {}
                Err(_) => return Err(Stop),
            }
            self.more()?;
        }
    }

    /// Copies `buf[start..end]`, checked to be UTF-8 when it was taken.
    fn copy(&mut self, start: usize, end: usize) {
        self.out.push_str(std::str::from_utf8(&self.buf[start..end]).unwrap_or_default());
    }

    fn value(&mut self, path: &mut Vec<String>, route: &dyn Fn(&[&str]) -> Route, judge: &mut Judge<'_>) -> Step<()> {
        let keys: Vec<&str> = path.iter().map(String::as_str).collect();
        match (route(&keys), self.peek()?) {
            (Route::Descend, Some(b'{')) => self.object(path, route, judge),
            (Route::Descend, Some(b'[')) => self.array(path, route, judge),
            (Route::Elements, Some(b'[')) => {
                let owner = self.owners.last().cloned().flatten();
                self.elements(path.last().map_or("", String::as_str), owner.as_deref(), judge)
            }
            _ => {
                let (start, end, _) = self.parse(&mut skip)?;
                self.copy(start, end);
                Ok(())
            }
        }
    }

    fn object(&mut self, path: &mut Vec<String>, route: &dyn Fn(&[&str]) -> Route, judge: &mut Judge<'_>) -> Step<()> {
        self.expect(b'{')?;
        self.owners.push(None);
        let read = self.members(path, route, judge);
        self.owners.pop();
        read
    }

    /// The members of an object, after its `{`.
    fn members(&mut self, path: &mut Vec<String>, route: &dyn Fn(&[&str]) -> Route, judge: &mut Judge<'_>) -> Step<()> {
        if self.peek()? == Some(b'}') {
            return self.expect(b'}');
        }
        loop {
            if self.peek()? != Some(b'"') {
                return Err(Stop);
            }
            let (start, end, key) = self.parse(&mut |held| value_at::<String>(held))?;
            self.copy(start, end);
            self.expect(b':')?;
            if key == "name" {
                let (start, end, name) = self.parse(&mut |held| value_at::<serde_json::Value>(held))?;
                self.copy(start, end);
                // The first counts, as when a resource's name is read first.
                let owner = self.owners.last_mut().ok_or(Stop)?;
                if owner.is_none() {
                    *owner = name.as_str().map(str::to_string);
                }
            } else {
                path.push(key);
                self.value(path, route, judge)?;
                path.pop();
            }
            if self.peek()? != Some(b',') {
                return self.expect(b'}');
            }
            self.expect(b',')?;
        }
    }

    fn array(&mut self, path: &mut Vec<String>, route: &dyn Fn(&[&str]) -> Route, judge: &mut Judge<'_>) -> Step<()> {
        self.expect(b'[')?;
        if self.peek()? == Some(b']') {
            return self.expect(b']');
        }
        path.push("[]".to_string());
        loop {
            self.value(path, route, judge)?;
            if self.peek()? != Some(b',') {
                path.pop();
                return self.expect(b']');
            }
            self.expect(b',')?;
        }
    }

    /// The elements of the list `key`, each as `judge` has it.
    fn elements(&mut self, key: &str, owner: Option<&str>, judge: &mut Judge<'_>) -> Step<()> {
        self.expect(b'[')?;
        if self.peek()? == Some(b']') {
            return self.expect(b']');
        }
        let mut any = false;
        loop {
            let (start, end, verdict) = self.parse(&mut |held| judge(key, owner, held))?;
            let kept = !matches!(verdict, Verdict::Drop);
            if any && kept {
                self.out.push(',');
            }
            match verdict {
                Verdict::Keep => self.copy(start, end),
                Verdict::Stub(text) => self.out.push_str(&text),
                Verdict::Drop => {}
            }
            any |= kept;
            match self.peek()? {
                Some(b',') => self.pos += 1,
                _ => return self.expect(b']'),
            }
        }
    }
}

/// Takes a value without keeping anything of it.
fn skip(held: &[u8]) -> serde_json::Result<(usize, serde::de::IgnoredAny)> {
    value_at(held)
}

#[cfg(test)]
mod tests {
    use super::{Route, Verdict, filter, lines, value_at};
    use serde_json::{Value, json};

    /// `["list"]` and `["deep", [], "inner"]` are judged: `keep` elements kept, `stub` ones
    /// replaced by their names, `owned` ones kept in a list that a `keeper` holds, the rest
    /// dropped.
    fn route(path: &[&str]) -> Route {
        match path {
            [] | ["deep"] | ["deep", "[]"] => Route::Descend,
            ["list"] | ["deep", "[]", "inner"] => Route::Elements,
            _ => Route::Copy,
        }
    }

    fn judged(input: &[u8], piece: usize) -> Option<String> {
        let mut judge = |_: &str, owner: Option<&str>, held: &[u8]| {
            let (took, element) = value_at::<Value>(held)?;
            let verdict = match element.get("is").and_then(Value::as_str) {
                Some("keep") => Verdict::Keep,
                Some("owned") if owner == Some("keeper") => Verdict::Keep,
                Some("stub") => Verdict::Stub(json!({"name": element["name"]}).to_string()),
                _ => Verdict::Drop,
            };
            Ok((took, verdict))
        };
        filter(input, piece, &route, &mut judge)
    }

    #[test]
    fn a_document_read_in_pieces_of_any_size_keeps_what_its_judge_keeps_and_all_else() {
        // Strings that hold what ends a value, escapes and multi-byte text, numbers that a
        // piece could end within, and lists that end up empty.
        let document = r#" {"head": {"n": 1234567, "s": "a \"quoted\" ] } , [ { \\", "é": "ü𝄞"},
          "list": [ {"is": "drop", "name": "x]},{"}, {"is":"keep","name":"ünï","n":-1.5e10},
                    {"is": "stub", "name": "s\u00e9", "big": [1,2,3,{"is":"keep"}]}, 7, "keep", null ],
          "deep": [ {"inner": [{"is": "drop"}], "other": [{"is": "drop"}]}, {"inner": []}, 42, {"inner": [{"is":"keep"}]},
                    {"name": "keeper", "inner": [{"is": "owned"}]}, {"inner": [{"is": "owned"}], "name": "keeper"} ],
          "tail": [{"is": "drop"}], "last": 98765 } "#;
        let expected = json!({
            "head": {"n": 1234567, "s": "a \"quoted\" ] } , [ { \\", "é": "ü𝄞"},
            "list": [{"is":"keep","name":"ünï","n":-1.5e10}, {"name": "s\u{e9}"}],
            "deep": [{"inner": [], "other": [{"is": "drop"}]}, {"inner": []}, 42, {"inner": [{"is":"keep"}]},
                     {"name": "keeper", "inner": [{"is": "owned"}]}, {"inner": [], "name": "keeper"}],
            "tail": [{"is": "drop"}], "last": 98765
        });
        let whole = judged(document.as_bytes(), super::PIECE).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&whole).unwrap(), expected, "{whole}");
        for piece in 1..=64 {
            assert_eq!(judged(document.as_bytes(), piece).as_deref(), Some(whole.as_str()), "pieces of {piece}");
        }
    }

    #[test]
    fn a_document_that_is_not_valid_json_or_utf8_is_not_filtered() {
        let good = br#"{"list": [{"is": "drop", "name": "x"}, {"is": "keep"}], "n": 12}"#;
        let mut bad_utf8 = good.to_vec();
        bad_utf8[good.iter().position(|b| *b == b'x').unwrap()] = 0xff;
        let broken: [&[u8]; 7] = [
            &good[..good.len() - 1],
            br#"{"list": [{"is": "drop"} {"is": "keep"}]}"#,
            br#"{"list": [{"is": "drop", }]}"#,
            br#"{"list": [], "n": 12} {}"#,
            br#"{"list": [], "n": 1x}"#,
            br#"{"list": [], "n": 12,}"#,
            &bad_utf8,
        ];
        for piece in [1, 3, 7, super::PIECE] {
            assert!(judged(good, piece).is_some());
            for input in broken {
                assert_eq!(judged(input, piece), None, "{} in pieces of {piece}", String::from_utf8_lossy(input));
            }
        }
    }

    #[test]
    fn lines_are_cut_in_pieces_that_end_at_a_line_end() {
        let text = "keep ü one\ndrop two\n\nkeep 𝄞 three\r\ndrop\nkeep last";
        let keep = |text: &str| Some(text.lines().filter(|l| l.starts_with("keep")).map(|l| format!("{l}\n")).collect::<String>());
        for piece in 1..=24 {
            assert_eq!(lines(text.as_bytes(), piece, keep).as_deref(), Some("keep ü one\nkeep 𝄞 three\nkeep last\n"), "pieces of {piece}");
        }
        assert_eq!(lines(&b"keep \xff\n"[..], 4, keep), None);
        assert_eq!(lines(text.as_bytes(), 4, |_| None), None);
    }
}
