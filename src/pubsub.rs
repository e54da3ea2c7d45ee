//! The Pub/Sub push envelope: what a push subscription POSTs for each message
//! (<https://cloud.google.com/pubsub/docs/push>), and what `/events` reads from it.
//!
//! ```json
//! {"message":{"attributes":{"k":"v"},"data":"BASE64","messageId":"2070443601311540",
//!  "message_id":"2070443601311540","publishTime":"…","publish_time":"…"},
//!  "subscription":"projects/P/subscriptions/S","deliveryAttempt":1}
//! ```
//!
//! Only the message id and the subscription are read, for the log line and for idempotence;
//! the data is the application's to decode. Instead of a JSON library (serde and serde_json
//! would be the binary's largest dependency after hyper and tokio) this is a strict scanner of
//! RFC 8259 JSON that keeps the two strings it is after and checks the rest of the document,
//! in one pass, without recursion past [`MAX_DEPTH`]. It is fuzzed against serde_json
//! (`fuzz/fuzz_targets/pubsub_envelope.rs`) and property-tested (`tests/properties.rs`).

/// Nesting deeper than this is refused (serde_json's own default limit is 128): a push envelope
/// nests three deep, and a bound keeps a hostile body from exhausting the stack.
pub const MAX_DEPTH: u32 = 64;

/// What `/events` needs from a push envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `message.messageId`, or the older `message.message_id`: unique within the topic, and
    /// the same on every redelivery of the message.
    pub message_id: String,
    /// `subscription`: `projects/PROJECT/subscriptions/NAME`.
    pub subscription: String,
}

/// Why a body is not a push envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not one well-formed JSON object (or nested past [`MAX_DEPTH`]).
    NotJson,
    /// Well-formed, but without `message.messageId` (or `message_id`) as a non-empty string.
    NoMessageId,
    /// Well-formed, with a message id (given here), but no `subscription` string.
    NoSubscription,
}

/// Reads a push envelope: `Ok` when `body` is one JSON object with a `message` object holding
/// a non-empty `messageId` (or `message_id`) string, and a `subscription` string. For each
/// member the first occurrence counts.
pub fn parse(body: &[u8]) -> Result<Envelope, (Refused, Option<String>)> {
    let mut found = Found::default();
    let mut p = Scanner { s: body, i: 0 };
    p.ws();
    if p.peek() != Some(b'{') {
        return Err((Refused::NotJson, None));
    }
    let whole = p.object(1, |p, key, depth| match key {
        Key::Message if p.peek() == Some(b'{') => p.object(depth + 1, |p, key, depth| match key {
            Key::MessageId => p.keep_string(&mut found.message_id, depth),
            Key::MessageIdOld => p.keep_string(&mut found.message_id_old, depth),
            _ => p.value(depth),
        }),
        Key::Subscription => p.keep_string(&mut found.subscription, depth),
        _ => p.value(depth),
    });
    p.ws();
    if whole.is_err() || p.i != body.len() {
        return Err((Refused::NotJson, None));
    }
    let message_id = found
        .message_id
        .filter(|id| !id.is_empty())
        .or(found.message_id_old.filter(|id| !id.is_empty()));
    match (message_id, found.subscription) {
        (None, _) => Err((Refused::NoMessageId, None)),
        (Some(id), None) => Err((Refused::NoSubscription, Some(id))),
        (Some(message_id), Some(subscription)) => Ok(Envelope {
            message_id,
            subscription,
        }),
    }
}

#[derive(Default)]
struct Found {
    message_id: Option<String>,
    message_id_old: Option<String>,
    subscription: Option<String>,
}

/// The member names the scanner acts on; every other name is `Other`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    Message,
    MessageId,
    MessageIdOld,
    Subscription,
    Other,
}

impl Key {
    fn of(name: &[u8]) -> Self {
        match name {
            b"message" => Self::Message,
            b"messageId" => Self::MessageId,
            b"message_id" => Self::MessageIdOld,
            b"subscription" => Self::Subscription,
            _ => Self::Other,
        }
    }
}

/// Malformed JSON, found at some point of the scan.
struct Bad;

type Step = Result<(), Bad>;

struct Scanner<'a> {
    s: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> Step {
        if self.peek() == Some(b) {
            self.i += 1;
            Ok(())
        } else {
            Err(Bad)
        }
    }

    /// RFC 8259 §2: whitespace is space, tab, line feed and carriage return only.
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// Any value, checked and skipped.
    fn value(&mut self, depth: u32) -> Step {
        match self.peek() {
            Some(b'{') => self.object(depth + 1, |p, _, depth| p.value(depth)),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string(|_| {}),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            _ => self.number(),
        }
    }

    /// An object; `member` is called for each value, positioned at its first byte.
    fn object(&mut self, depth: u32, mut member: impl FnMut(&mut Self, Key, u32) -> Step) -> Step {
        if depth > MAX_DEPTH {
            return Err(Bad);
        }
        self.eat(b'{')?;
        self.ws();
        if self.eat(b'}').is_ok() {
            return Ok(());
        }
        loop {
            let mut key = Key::Other;
            // Keys of interest are plain ASCII; an escaped one (`"message\u0049d"`) is
            // compared decoded, as a JSON reader would.
            let mut name = Vec::new();
            self.string(|b| name.push(b))?;
            if name.len() <= b"subscription".len() {
                key = Key::of(&name);
            }
            self.ws();
            self.eat(b':')?;
            self.ws();
            member(self, key, depth)?;
            self.ws();
            if self.eat(b',').is_ok() {
                self.ws();
                continue;
            }
            return self.eat(b'}');
        }
    }

    fn array(&mut self, depth: u32) -> Step {
        if depth > MAX_DEPTH {
            return Err(Bad);
        }
        self.eat(b'[')?;
        self.ws();
        if self.eat(b']').is_ok() {
            return Ok(());
        }
        loop {
            self.ws();
            self.value(depth)?;
            self.ws();
            if self.eat(b',').is_err() {
                return self.eat(b']');
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Step {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(Bad)
        }
    }

    /// RFC 8259 §6: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Step {
        let _ = self.eat(b'-');
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(Bad),
        }
        if self.eat(b'.').is_ok() {
            self.some_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            self.some_digits()?;
        }
        Ok(())
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
    }

    fn some_digits(&mut self) -> Step {
        let start = self.i;
        self.digits();
        if self.i == start { Err(Bad) } else { Ok(()) }
    }

    /// A value that counts only as a string: decoded into `slot` if it is one and `slot` is
    /// still empty (the first occurrence counts), otherwise checked and skipped.
    fn keep_string(&mut self, slot: &mut Option<String>, depth: u32) -> Step {
        if self.peek() != Some(b'"') {
            return self.value(depth);
        }
        let mut out = Vec::new();
        self.string(|b| out.push(b))?;
        if slot.is_none() {
            // The input was checked as UTF-8 run by run, and escapes decode to whole
            // characters: this cannot fail, but a failure is malformed input, not a panic.
            *slot = Some(String::from_utf8(out).map_err(|_| Bad)?);
        }
        Ok(())
    }

    /// A string (RFC 8259 §7), its decoded UTF-8 bytes handed to `out`.
    fn string(&mut self, mut out: impl FnMut(u8)) -> Step {
        self.eat(b'"')?;
        loop {
            // The run of plain bytes up to the next quote, backslash or control character.
            let start = self.i;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.i += 1;
            }
            let run = &self.s[start..self.i];
            std::str::from_utf8(run).map_err(|_| Bad)?;
            run.iter().for_each(|&b| out(b));
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = self.escape()?;
                    let mut utf8 = [0u8; 4];
                    c.encode_utf8(&mut utf8).bytes().for_each(&mut out);
                }
                // A control character, or the end of the input.
                _ => return Err(Bad),
            }
        }
    }

    /// The character after a backslash: `"\/bfnrt` or `uXXXX` (a surrogate pair for
    /// characters past U+FFFF, RFC 8259 §7).
    fn escape(&mut self) -> Result<char, Bad> {
        let b = self.peek().ok_or(Bad)?;
        self.i += 1;
        Ok(match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = self.hex4()?;
                match hi {
                    0xD800..=0xDBFF => {
                        self.eat(b'\\')?;
                        self.eat(b'u')?;
                        let lo = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&lo) {
                            return Err(Bad);
                        }
                        let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                        char::from_u32(c).ok_or(Bad)?
                    }
                    // A lone low surrogate is no character.
                    0xDC00..=0xDFFF => return Err(Bad),
                    _ => char::from_u32(hi).ok_or(Bad)?,
                }
            }
            _ => return Err(Bad),
        })
    }

    fn hex4(&mut self) -> Result<u32, Bad> {
        let digits = self.s.get(self.i..self.i + 4).ok_or(Bad)?;
        let mut n = 0;
        for &d in digits {
            n = n * 16 + char::from(d).to_digit(16).ok_or(Bad)?;
        }
        self.i += 4;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> Envelope {
        parse(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e:?}"))
    }

    #[test]
    fn the_documented_envelope_gives_its_message_id_and_subscription() {
        let e = ok(
            r#"{"message":{"attributes":{"key":"value"},"data":"SGVsbG8gQ2xvdWQgUHViL1N1YiEgSGVyZSBpcyBteSBtZXNzYWdlIQ==","messageId":"2070443601311540","message_id":"2070443601311540","publishTime":"2021-02-26T19:13:55.749Z","publish_time":"2021-02-26T19:13:55.749Z"},"subscription":"projects/myproject/subscriptions/mysubscription"}"#,
        );
        assert_eq!(e.message_id, "2070443601311540");
        assert_eq!(
            e.subscription,
            "projects/myproject/subscriptions/mysubscription"
        );
    }

    #[test]
    fn member_order_whitespace_escapes_and_the_older_name_are_taken() {
        let e = ok(
            "\t{ \"subscription\" : \"projects/p/subscriptions/s\\u00e9\" ,\r\n \"deliveryAttempt\": 5, \"extra\": [1, -2.5e+3, true, null, {\"a\": []}],\n \"message\" : { \"message_id\" : \"4\\u0032\" } }\n",
        );
        assert_eq!(e.message_id, "42");
        assert_eq!(e.subscription, "projects/p/subscriptions/sé");
        // `messageId` wins over `message_id`; the first of a repeated member counts.
        let e = ok(
            r#"{"message":{"message_id":"old","messageId":"new","messageId":"later"},"subscription":"s","subscription":"t"}"#,
        );
        assert_eq!(
            (e.message_id.as_str(), e.subscription.as_str()),
            ("new", "s")
        );
        // An escaped member name is its decoded name.
        let e = ok(r#"{"m\u0065ssage":{"messageI\u0064":"\ud83d\ude00"},"subscription":"s"}"#);
        assert_eq!(e.message_id, "😀");
    }

    #[test]
    fn anything_but_one_json_object_is_not_json() {
        for bad in [
            "",
            " ",
            "[]",
            "\"message\"",
            "{",
            "{}}",
            "{} {}",
            r#"{"message":{"messageId":"1"},"subscription":"s",}"#,
            r#"{"message":{"messageId":"1"} "subscription":"s"}"#,
            r#"{"message":{"messageId":'1'},"subscription":"s"}"#,
            r#"{"message":{"messageId":"1\x"},"subscription":"s"}"#,
            r#"{"message":{"messageId":"1\ud800"},"subscription":"s"}"#,
            r#"{"message":{"messageId":"1\udc00"},"subscription":"s"}"#,
            r#"{"message":{"messageId":"1\u12"},"subscription":"s"}"#,
            "{\"message\":{\"messageId\":\"1\n\"},\"subscription\":\"s\"}",
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":.5}"#,
            r#"{"a":1e}"#,
            r#"{"a":+1}"#,
            r#"{"a":tru}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":NaN}"#,
            "{\"a\":1}\u{a0}",
        ] {
            assert_eq!(
                parse(bad.as_bytes()),
                Err((Refused::NotJson, None)),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse(b"{\"a\":\"\xff\"}"),
            Err((Refused::NotJson, None)),
            "invalid UTF-8"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n), "]".repeat(n));
        assert!(matches!(
            parse(deep(MAX_DEPTH as usize - 1).as_bytes()),
            Err((Refused::NoMessageId, None))
        ));
        assert_eq!(
            parse(deep(MAX_DEPTH as usize).as_bytes()),
            Err((Refused::NotJson, None))
        );
        // Far past any stack: refused, not overflowed.
        assert_eq!(
            parse(deep(1_000_000).as_bytes()),
            Err((Refused::NotJson, None))
        );
    }

    #[test]
    fn a_well_formed_body_without_the_members_says_which_is_missing() {
        for body in [
            r#"{"subscription":"s"}"#,
            r#"{"message":"1","subscription":"s"}"#,
            r#"{"message":{"messageId":1},"subscription":"s"}"#,
            r#"{"message":{"messageId":""},"subscription":"s"}"#,
            r#"{"message":{"data":"aGk="},"messageId":"1","subscription":"s"}"#,
        ] {
            assert_eq!(
                parse(body.as_bytes()),
                Err((Refused::NoMessageId, None)),
                "{body}"
            );
        }
        assert_eq!(
            parse(br#"{"message":{"messageId":"7"},"subscription":["s"]}"#),
            Err((Refused::NoSubscription, Some("7".to_owned())))
        );
    }
}
