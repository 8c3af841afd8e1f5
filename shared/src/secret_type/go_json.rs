//! Whether bytes are what Go's `encoding/json` accepts as a JSON object:
//! `json.Unmarshal(data, &map[string]interface{}{})` returning no error,
//! which is how the API server checks `.dockercfg` and `.dockerconfigjson`.
//!
//! Go's reading, which this follows rule for rule (and which differs from a
//! strict RFC 8259 reader such as `serde_json`):
//! * the grammar is RFC 8259's, with white space `' '`, `\t`, `\n`, `\r`;
//! * bytes inside strings are not checked as UTF-8 (Go replaces invalid
//!   sequences with U+FFFD); control characters below `0x20` are refused;
//! * arrays and objects nest at most 10,000 deep (`maxNestingDepth`);
//! * the top-level value is an object, or `null` (a nil map, no error);
//! * every number must fit a `float64`: one that rounds to infinity is an
//!   error (`strconv.ParseFloat`'s `ErrRange`), one that rounds to zero is not.
//!
//! Nothing here quotes the input: a [`JsonProblem`] names a byte offset and
//! the rule, never a byte of the value.

use std::fmt;

/// Go's `maxNestingDepth` in `encoding/json/scanner.go`.
pub const MAX_NESTING_DEPTH: usize = 10_000;

/// Why the bytes are not a JSON object as Go reads one. Offsets are in
/// bytes from the start of the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonProblem {
    /// No value at all (empty, or only white space).
    Empty,
    /// Not JSON: the grammar breaks at this byte offset.
    Syntax {
        /// Byte offset of the first byte that does not fit.
        offset: usize,
        /// What is there, in words that quote no byte of the value.
        reason: &'static str,
    },
    /// Arrays and objects nested deeper than [`MAX_NESTING_DEPTH`].
    TooDeep {
        /// Byte offset of the bracket that goes too deep.
        offset: usize,
    },
    /// Valid JSON, but the top-level value is not an object.
    NotAnObject {
        /// What it is: `a JSON array`, `a JSON string`, `a JSON number`,
        /// `a JSON boolean`.
        found: &'static str,
    },
    /// A number too large for a `float64`.
    NumberOutOfRange {
        /// Byte offset of the number.
        offset: usize,
    },
}

impl fmt::Display for JsonProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonProblem::Empty => f.write_str("it is empty, not JSON"),
            JsonProblem::Syntax { offset, reason } => {
                write!(f, "it is not JSON: {reason} at byte {offset}")
            }
            JsonProblem::TooDeep { offset } => write!(
                f,
                "it nests deeper than {MAX_NESTING_DEPTH} levels (at byte {offset})"
            ),
            JsonProblem::NotAnObject { found } => write!(f, "it is {found}, not an object"),
            JsonProblem::NumberOutOfRange { offset } => write!(
                f,
                "it holds a number too large for a 64-bit float (at byte {offset})"
            ),
        }
    }
}

/// Checks that `bytes` are a JSON object (or `null`) as Go's
/// `json.Unmarshal` into a `map[string]interface{}` accepts it. Runs in
/// linear time and constant stack (no recursion), whatever the input.
pub fn check_object(bytes: &[u8]) -> Result<(), JsonProblem> {
    let mut reader = Reader { bytes, at: 0 };
    reader.skip_space();
    let top = match reader.peek() {
        None => return Err(JsonProblem::Empty),
        Some(byte) => byte,
    };
    reader.value()?;
    reader.skip_space();
    if reader.at != bytes.len() {
        return Err(JsonProblem::Syntax {
            offset: reader.at,
            reason: "text after the JSON value",
        });
    }
    match top {
        b'{' | b'n' => Ok(()),
        b'[' => Err(JsonProblem::NotAnObject {
            found: "a JSON array",
        }),
        b'"' => Err(JsonProblem::NotAnObject {
            found: "a JSON string",
        }),
        b't' | b'f' => Err(JsonProblem::NotAnObject {
            found: "a JSON boolean",
        }),
        _ => Err(JsonProblem::NotAnObject {
            found: "a JSON number",
        }),
    }
}

/// What an open bracket expects next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    /// In an array.
    Array,
    /// In an object.
    Object,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// The grammar breaks here: what is there, said by its kind.
    fn syntax(&self) -> JsonProblem {
        let before = self.bytes[..self.at]
            .iter()
            .rev()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
        let reason = match self.peek() {
            None => "the text ends inside a value",
            Some(0xef) if self.at == 0 && self.bytes.starts_with(b"\xef\xbb\xbf") => {
                "a byte-order mark"
            }
            Some(b'}' | b']') if before == Some(&b',') => "a trailing comma",
            Some(b'\'') => "a single quote (JSON strings take double quotes)",
            Some(byte) if byte < 0x20 => "a control character (escape it in a string)",
            Some(byte) if byte >= 0x80 => "a byte outside ASCII outside a string",
            Some(_) => "an unexpected character",
        };
        JsonProblem::Syntax {
            offset: self.at,
            reason,
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), JsonProblem> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.syntax())
        }
    }

    /// One value, nested ones included, with an explicit stack.
    fn value(&mut self) -> Result<(), JsonProblem> {
        let mut stack: Vec<Open> = Vec::new();
        loop {
            // A value starts here.
            self.skip_space();
            match self.peek() {
                Some(open @ (b'[' | b'{')) => {
                    if stack.len() == MAX_NESTING_DEPTH {
                        return Err(JsonProblem::TooDeep { offset: self.at });
                    }
                    self.at += 1;
                    self.skip_space();
                    if open == b'[' {
                        if self.peek() == Some(b']') {
                            self.at += 1;
                        } else {
                            stack.push(Open::Array);
                            continue;
                        }
                    } else if self.peek() == Some(b'}') {
                        self.at += 1;
                    } else {
                        stack.push(Open::Object);
                        self.member_name()?;
                        continue;
                    }
                }
                Some(b'"') => self.string()?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                _ => return Err(self.syntax()),
            }
            // A value ended: close what it ends, or go on to the next one.
            loop {
                let Some(&open) = stack.last() else {
                    return Ok(());
                };
                self.skip_space();
                match (open, self.peek()) {
                    (_, Some(b',')) => {
                        self.at += 1;
                        if open == Open::Object {
                            self.skip_space();
                            self.member_name()?;
                        }
                        break;
                    }
                    (Open::Array, Some(b']')) | (Open::Object, Some(b'}')) => {
                        self.at += 1;
                        stack.pop();
                    }
                    _ => return Err(self.syntax()),
                }
            }
        }
    }

    /// `"name" :` of an object member (white space before it skipped).
    fn member_name(&mut self) -> Result<(), JsonProblem> {
        if self.peek() != Some(b'"') {
            return Err(self.syntax());
        }
        self.string()?;
        self.skip_space();
        self.expect(b':')
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), JsonProblem> {
        for &byte in word {
            self.expect(byte)?;
        }
        Ok(())
    }

    /// A string; bytes of 0x20 and above are taken as they are (Go does
    /// not check UTF-8 here), escapes must be JSON's.
    fn string(&mut self) -> Result<(), JsonProblem> {
        self.expect(b'"')?;
        loop {
            match self.peek() {
                None => return Err(self.syntax()),
                Some(b'"') => {
                    self.at += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.at += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.at += 1;
                        }
                        Some(b'u') => {
                            self.at += 1;
                            for _ in 0..4 {
                                if !self.peek().is_some_and(|b| b.is_ascii_hexdigit()) {
                                    return Err(self.syntax());
                                }
                                self.at += 1;
                            }
                        }
                        _ => return Err(self.syntax()),
                    }
                }
                Some(byte) if byte < 0x20 => return Err(self.syntax()),
                Some(_) => self.at += 1,
            }
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, then the
    /// `float64` range.
    fn number(&mut self) -> Result<(), JsonProblem> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.syntax()),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                return Err(self.syntax());
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                return Err(self.syntax());
            }
            self.digits();
        }
        // The grammar above is a subset of what Rust's float parser takes;
        // both round correctly, so both overflow to infinity exactly where
        // Go's ParseFloat reports ErrRange.
        let text =
            std::str::from_utf8(&self.bytes[start..self.at]).map_err(|_| JsonProblem::Syntax {
                offset: start,
                reason: "an unexpected character",
            })?;
        match text.parse::<f64>() {
            Ok(number) if number.is_finite() => Ok(()),
            _ => Err(JsonProblem::NumberOutOfRange { offset: start }),
        }
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_and_null_are_accepted() {
        for good in [
            &b"{}"[..],
            b" {\"auths\":{}} ",
            b"\t\r\n{\"a\": [1, -0.5e+3, true, false, null, \"x\\u00e9\\n\"]}\n",
            b"null",
            b"{\"a\":1,\"a\":2}",
            b"{\"\xff\xfe\": \"\xc3\x28\"}",
            b"{\"tiny\": 1e-400}",
            b"{\"big\": 123456789012345678901234567890}",
            b"{\"max\": 1.7976931348623157e308}",
        ] {
            assert_eq!(
                check_object(good),
                Ok(()),
                "{}",
                String::from_utf8_lossy(good)
            );
        }
    }

    #[test]
    fn what_go_refuses() {
        use JsonProblem::*;
        #[allow(non_snake_case)]
        fn Syntax(offset: usize) -> JsonProblem {
            JsonProblem::Syntax { offset, reason: "" }
        }
        // Reasons are checked apart: compare the offset only.
        let without_reason = |result: Result<(), JsonProblem>| match result {
            Err(JsonProblem::Syntax { offset, .. }) => Err(Syntax(offset)),
            other => other,
        };
        for (bad, problem) in [
            (&b""[..], Empty),
            (b"  \n", Empty),
            (b"\xef\xbb\xbf{}", Syntax(0)),
            (b"{", Syntax(1)),
            (b"{} {}", Syntax(3)),
            (b"{\"a\":1,}", Syntax(7)),
            (b"{'a':1}", Syntax(1)),
            (b"{a:1}", Syntax(1)),
            (b"{\"a\":01}", Syntax(6)),
            (b"{\"a\":1.}", Syntax(7)),
            (b"{\"a\":.5}", Syntax(5)),
            (b"{\"a\":+1}", Syntax(5)),
            (b"{\"a\":1e}", Syntax(7)),
            (b"{\"a\":NaN}", Syntax(5)),
            (b"{\"a\":tru}", Syntax(8)),
            (b"{\"a\":\"\t\"}", Syntax(6)),
            (b"{\"a\":\"\\x\"}", Syntax(7)),
            (b"{\"a\":\"\\u12g4\"}", Syntax(10)),
            (b"{\"a\":\"open}", Syntax(11)),
            (b"{\"a\" 1}", Syntax(5)),
            (
                b"[1]",
                NotAnObject {
                    found: "a JSON array",
                },
            ),
            (
                b"\"s\"",
                NotAnObject {
                    found: "a JSON string",
                },
            ),
            (
                b"true",
                NotAnObject {
                    found: "a JSON boolean",
                },
            ),
            (
                b"1",
                NotAnObject {
                    found: "a JSON number",
                },
            ),
            (b"{\"a\":1e400}", NumberOutOfRange { offset: 5 }),
            (b"{\"a\":[-1.8e308]}", NumberOutOfRange { offset: 6 }),
        ] {
            assert_eq!(
                without_reason(check_object(bad)),
                Err(problem),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn nesting_stops_at_go_s_depth() {
        let nested = |depth: usize| {
            let mut text = "{\"a\":".repeat(depth - 1);
            text.push_str("{}");
            text.push_str(&"}".repeat(depth - 1));
            text.into_bytes()
        };
        assert_eq!(check_object(&nested(MAX_NESTING_DEPTH)), Ok(()));
        assert_eq!(
            check_object(&nested(MAX_NESTING_DEPTH + 1)),
            Err(JsonProblem::TooDeep {
                offset: 5 * MAX_NESTING_DEPTH
            })
        );
        // Deep arrays cost no stack either.
        let mut deep = b"{\"a\":".to_vec();
        deep.extend(std::iter::repeat_n(b'[', 1_000_000));
        assert!(matches!(
            check_object(&deep),
            Err(JsonProblem::TooDeep { .. })
        ));
    }

    #[test]
    fn syntax_errors_say_what_is_there() {
        for (bad, reason) in [
            (&b"\xef\xbb\xbf{}"[..], "a byte-order mark at byte 0"),
            (b"{\"auths\":{},}", "a trailing comma at byte 12"),
            (b"[1, ]", "a trailing comma at byte 4"),
            (b"{} x", "text after the JSON value at byte 3"),
            (b"{'a':1}", "a single quote"),
            (b"{\"a\":\"\t\"}", "a control character"),
            (b"{\"a\":", "the text ends inside a value"),
            (b"{\"a\":x}", "an unexpected character at byte 5"),
        ] {
            let message = check_object(bad).unwrap_err().to_string();
            assert!(message.contains(reason), "{message}");
        }
        assert_eq!(
            check_object(b"[]").unwrap_err().to_string(),
            "it is a JSON array, not an object"
        );
    }

    #[test]
    fn messages_quote_nothing() {
        let secret = b"{\"auth\": \"hunter2\" oops}";
        let message = check_object(secret).unwrap_err().to_string();
        assert!(
            !message.contains("hunter2") && !message.contains("oops"),
            "{message}"
        );
        assert!(message.contains("byte"), "{message}");
    }
}
