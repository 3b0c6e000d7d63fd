//! The folded form of the legacy exception-handling instructions,
//! `(try $l (result ..) (do ..) (catch $e ..) (catch_all ..))` and
//! `(try (do ..) (delegate $l))`, which the spec's `legacy/` scripts use and
//! the `wast` crate no longer parses: rewritten into the flat form it does
//! parse (`try $l (result ..) .. catch $e .. catch_all .. end`).
//!
//! The rewrite works on S-expressions: comments are dropped, strings and
//! every other token are kept as written. A folded `try` among instructions
//! becomes the flat sequence in place; one in the operand position of a
//! folded instruction is wrapped in a `block` of the same type (which adds
//! no label inside the `try`, so indices there keep their meaning).

enum Node {
    Atom(String),
    List(Vec<Node>),
}

/// Rewrites the script if it uses the folded legacy form; `None` if it does not.
pub fn unfold(text: &str) -> Option<String> {
    if !text.contains("(do") {
        return None;
    }
    let mut tokens = Tokens { text, pos: 0 };
    let mut top = Vec::new();
    while let Some(node) = tokens.node() {
        top.push(node);
    }
    let mut out = String::with_capacity(text.len());
    for node in top {
        for n in rewrite(node, true) {
            write(&n, &mut out);
            out.push('\n');
        }
    }
    Some(out)
}

struct Tokens<'a> {
    text: &'a str,
    pos: usize,
}

impl Tokens<'_> {
    fn skip_blank(&mut self) {
        let b = self.text.as_bytes();
        loop {
            while self.pos < b.len() && b[self.pos].is_ascii_whitespace() {
                self.pos += 1;
            }
            if b[self.pos..].starts_with(b";;") {
                while self.pos < b.len() && b[self.pos] != b'\n' {
                    self.pos += 1;
                }
            } else if b[self.pos..].starts_with(b"(;") {
                let mut depth = 0;
                while self.pos < b.len() {
                    if b[self.pos..].starts_with(b"(;") {
                        depth += 1;
                        self.pos += 2;
                    } else if b[self.pos..].starts_with(b";)") {
                        depth -= 1;
                        self.pos += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        self.pos += 1;
                    }
                }
            } else {
                return;
            }
        }
    }

    fn node(&mut self) -> Option<Node> {
        self.skip_blank();
        let b = self.text.as_bytes();
        if self.pos >= b.len() || b[self.pos] == b')' {
            return None;
        }
        if b[self.pos] == b'(' {
            self.pos += 1;
            let mut items = Vec::new();
            while let Some(n) = self.node() {
                items.push(n);
            }
            self.pos += 1; // ')'
            return Some(Node::List(items));
        }
        let start = self.pos;
        if b[self.pos] == b'"' {
            self.pos += 1;
            while self.pos < b.len() && b[self.pos] != b'"' {
                self.pos += if b[self.pos] == b'\\' { 2 } else { 1 };
            }
            self.pos += 1;
        } else {
            while self.pos < b.len() && !b[self.pos].is_ascii_whitespace() && b[self.pos] != b'(' && b[self.pos] != b')' && b[self.pos] != b'"' {
                self.pos += 1;
            }
        }
        Some(Node::Atom(self.text[start..self.pos.min(b.len())].to_string()))
    }
}

fn head(items: &[Node]) -> Option<&str> {
    match items.first() {
        Some(Node::Atom(a)) => Some(a),
        _ => None,
    }
}

/// Whether a list's children are a sequence of instructions (where a flat
/// `try` may stand), rather than a folded instruction's operands.
fn holds_instructions(head: Option<&str>) -> bool {
    matches!(head, Some("func" | "do" | "catch" | "catch_all" | "block" | "loop" | "then" | "else" | "try_table" | "module" | "global"))
}

/// The rewritten form of `node`: several nodes where a folded `try` becomes
/// a flat sequence (`in_sequence`), one otherwise.
fn rewrite(node: Node, in_sequence: bool) -> Vec<Node> {
    let Node::List(items) = node else { return vec![node] };
    let sequence = holds_instructions(head(&items));
    let mut children = Vec::with_capacity(items.len());
    for child in items {
        children.extend(rewrite(child, sequence));
    }
    let is_folded_try = head(&children) == Some("try") && children.iter().any(|c| matches!(c, Node::List(l) if head(l) == Some("do")));
    if !is_folded_try {
        return vec![Node::List(children)];
    }
    let mut flat = vec![Node::Atom("try".into())];
    let mut block_type = Vec::new();
    let mut ends_with_delegate = false;
    for child in children.into_iter().skip(1) {
        match child {
            Node::List(mut l) if matches!(head(&l), Some("do" | "catch" | "catch_all" | "delegate")) => {
                let kw = head(&l).unwrap().to_string();
                if kw == "delegate" {
                    ends_with_delegate = true;
                    flat.append(&mut l);
                    continue;
                }
                if kw == "catch" {
                    // The keyword and its tag stay in front of the body.
                    let mut rest = l.split_off(2);
                    flat.append(&mut l);
                    flat.append(&mut rest);
                } else if kw == "catch_all" {
                    flat.append(&mut l);
                } else {
                    flat.extend(l.into_iter().skip(1));
                }
            }
            Node::List(l) => {
                // (result ..), (param ..), (type ..): the block type.
                let copy = Node::List(l.iter().map(clone).collect());
                block_type.push(copy);
                flat.push(Node::List(l));
            }
            atom => flat.push(atom),
        }
    }
    if !ends_with_delegate {
        flat.push(Node::Atom("end".into()));
    }
    if in_sequence {
        flat
    } else {
        let mut block = vec![Node::Atom("block".into())];
        block.extend(block_type);
        block.extend(flat);
        vec![Node::List(block)]
    }
}

fn clone(n: &Node) -> Node {
    match n {
        Node::Atom(a) => Node::Atom(a.clone()),
        Node::List(l) => Node::List(l.iter().map(clone).collect()),
    }
}

fn write(node: &Node, out: &mut String) {
    match node {
        Node::Atom(a) => out.push_str(a),
        Node::List(items) => {
            out.push('(');
            for (i, n) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write(n, out);
            }
            out.push(')');
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn folded_try_becomes_flat() {
        let text = r#"(module (func (result i32) ;; comment
            (try $t (result i32) (do (i32.const 1)) (catch $e (i32.const 2)) (catch_all (i32.const 3)))))"#;
        let out = super::unfold(text).unwrap();
        assert_eq!(out.trim(), "(module (func (result i32) try $t (result i32) (i32.const 1) catch $e (i32.const 2) catch_all (i32.const 3) end))");
        let text = "(module (func (i32.add (try (result i32) (do (i32.const 1)) (delegate 0)) (i32.const 1)) drop))";
        let out = super::unfold(text).unwrap();
        assert_eq!(out.trim(), "(module (func (i32.add (block (result i32) try (result i32) (i32.const 1) delegate 0) (i32.const 1)) drop))");
    }
}
