//! A small JSON reader for the `json` and `unpack` stages. It walks the object in document
//! order (serde_json's map would sort keys and keep the last duplicate; Loki keeps the first)
//! and hands out scalar leaves with their key path.

/// A scalar leaf: strings unescaped, numbers as written, booleans as `true`/`false`.
pub(crate) enum Leaf<'a> {
    Str(String),
    Raw(&'a str),
    Null,
}

impl Leaf<'_> {
    pub fn into_string(self) -> Option<String> {
        match self {
            Leaf::Str(s) => Some(s),
            Leaf::Raw(r) => Some(r.to_string()),
            Leaf::Null => None,
        }
    }
}

/// Walks a top-level JSON object. `visit(path, leaf)` is called for every scalar reached
/// through objects only (arrays are skipped whole, as Loki does); `path` holds the keys from
/// the top. Errors when the text is not one well-formed object.
pub(crate) fn walk_object(
    text: &str,
    visit: &mut dyn FnMut(&[&str], Leaf<'_>),
) -> Result<(), String> {
    let mut r = Reader { s: text, at: 0 };
    r.ws();
    if r.peek() != Some(b'{') {
        return Err("Value looks like a non-object: a JSON object is required".to_string());
    }
    let mut path: Vec<String> = Vec::new();
    r.object(&mut path, visit)?;
    r.ws();
    if r.at != r.s.len() {
        return Err(format!(
            "unexpected data after the object at offset {}",
            r.at
        ));
    }
    Ok(())
}

struct Reader<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.at).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        self.ws();
        if self.peek() == Some(c) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!(
                "expected {:?} at offset {}",
                char::from(c),
                self.at
            ))
        }
    }

    fn object(
        &mut self,
        path: &mut Vec<String>,
        visit: &mut dyn FnMut(&[&str], Leaf<'_>),
    ) -> Result<(), String> {
        self.expect(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.expect(b':')?;
            self.ws();
            path.push(key);
            self.value(path, visit)?;
            path.pop();
            self.ws();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(());
                }
                _ => {
                    return Err(format!(
                        "Value looks like object, but can't find closing '}}' symbol at offset {}",
                        self.at
                    ))
                }
            }
        }
    }

    fn value(
        &mut self,
        path: &mut Vec<String>,
        visit: &mut dyn FnMut(&[&str], Leaf<'_>),
    ) -> Result<(), String> {
        match self.peek() {
            Some(b'{') => self.object(path, visit),
            Some(b'[') => self.skip_array(),
            Some(b'"') => {
                let s = self.string()?;
                let refs: Vec<&str> = path.iter().map(String::as_str).collect();
                visit(&refs, Leaf::Str(s));
                Ok(())
            }
            Some(_) => {
                let start = self.at;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.'))
                {
                    self.at += 1;
                }
                let raw = &self.s[start..self.at];
                let leaf = match raw {
                    "null" => Leaf::Null,
                    "true" | "false" => Leaf::Raw(raw),
                    _ if raw.parse::<f64>().is_ok() => Leaf::Raw(raw),
                    _ => return Err(format!("Unknown value type at offset {start}")),
                };
                let refs: Vec<&str> = path.iter().map(String::as_str).collect();
                visit(&refs, leaf);
                Ok(())
            }
            None => Err("unexpected end of JSON input".to_string()),
        }
    }

    /// Skips an array, strings included, by bracket depth.
    fn skip_array(&mut self) -> Result<(), String> {
        let mut depth = 0usize;
        while let Some(c) = self.peek() {
            match c {
                b'"' => {
                    self.string()?;
                    continue;
                }
                b'[' | b'{' => depth += 1,
                b']' | b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        self.at += 1;
                        return Ok(());
                    }
                }
                _ => {}
            }
            self.at += 1;
        }
        Err("Value is array, but can't find closing ']' symbol".to_string())
    }

    fn string(&mut self) -> Result<String, String> {
        if self.peek() != Some(b'"') {
            return Err(format!("expected a string at offset {}", self.at));
        }
        let start = self.at;
        self.at += 1;
        let mut escaped = false;
        while let Some(c) = self.peek() {
            self.at += 1;
            match c {
                b'\\' => {
                    escaped = true;
                    self.at += 1;
                }
                b'"' => {
                    let raw = &self.s[start..self.at];
                    if !escaped {
                        return Ok(raw[1..raw.len() - 1].to_string());
                    }
                    return serde_json::from_str::<String>(raw)
                        .map_err(|e| format!("invalid string at offset {start}: {e}"));
                }
                _ => {}
            }
        }
        Err("Value looks like string, but can't find closing '\"' symbol".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(text: &str) -> Result<Vec<(String, Option<String>)>, String> {
        let mut out = Vec::new();
        walk_object(text, &mut |p, l| out.push((p.join("."), l.into_string())))?;
        Ok(out)
    }

    #[test]
    fn document_order_nested_and_arrays_skipped() {
        let got =
            leaves(r#"{"b":1,"a":{"x":"y\"z","n":null},"arr":[1,{"q":"]"}],"t":true}"#).unwrap();
        assert_eq!(
            got,
            [
                ("b".into(), Some("1".into())),
                ("a.x".into(), Some("y\"z".into())),
                ("a.n".into(), None),
                ("t".into(), Some("true".into())),
            ]
        );
    }

    #[test]
    fn malformed() {
        assert!(leaves("not json").is_err());
        assert!(leaves(r#"{"a":1"#).is_err());
        assert!(leaves(r#"{"a":1} x"#).is_err());
        assert!(leaves("[1]").is_err());
        assert!(leaves(r#"{"a":"#).is_err());
    }
}
