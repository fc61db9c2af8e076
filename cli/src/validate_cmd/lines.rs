//! Where things are in a YAML file: the documents of a multi-document file (their line
//! ranges) and, in each, the line of every field path (`spec.steps[1].with.url`), so that a
//! problem found on the typed object can point at the line to edit.

use std::collections::HashMap;

use yaml_rust2::Event;
use yaml_rust2::parser::{MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// One document of a YAML stream.
#[derive(Debug, Default)]
pub struct DocLines {
    /// 1-based line where the document starts (its `---`, or its first content).
    pub first_line: usize,
    /// 1-based line of each field path's key (or of a list item's start).
    paths: HashMap<String, usize>,
}

impl DocLines {
    /// The line of `path`, else of its nearest ancestor present in the document, else the
    /// document's first line.
    pub fn line_of(&self, path: &str) -> usize {
        let mut p = path;
        loop {
            if let Some(line) = self.paths.get(p) {
                return *line;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return self.first_line,
            }
        }
    }
}

/// A YAML syntax error with its 1-based line.
#[derive(Debug)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

/// The documents of `text`, in order, each with its path→line map.
pub fn scan(text: &str) -> Result<Vec<DocLines>, SyntaxError> {
    let mut recv = Receiver::default();
    Parser::new_from_str(text)
        .load(&mut recv, true)
        .map_err(|e| SyntaxError {
            line: e.marker().line(),
            message: e.info().to_string(),
        })?;
    Ok(recv.docs)
}

enum Frame {
    Mapping { path: String, key: Option<String> },
    Sequence { path: String, index: usize },
}

#[derive(Default)]
struct Receiver {
    docs: Vec<DocLines>,
    stack: Vec<Frame>,
}

impl Receiver {
    /// The path of the node that starts now, or `None` when it is a mapping key.
    fn node_path(&mut self, line: usize, scalar: Option<&str>) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Mapping { path, key }) => match key.take() {
                None => {
                    // A key: remember it and record where it is written.
                    let name = scalar.unwrap_or("?").to_string();
                    let full = join(path, &name);
                    if let Some(doc) = self.docs.last_mut() {
                        doc.paths.entry(full).or_insert(line);
                    }
                    *key = Some(name);
                    None
                }
                Some(name) => Some(join(path, &name)),
            },
            Some(Frame::Sequence { path, index }) => {
                let full = format!("{path}[{index}]");
                *index += 1;
                if let Some(doc) = self.docs.last_mut() {
                    doc.paths.entry(full.clone()).or_insert(line);
                }
                Some(full)
            }
        }
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl MarkedEventReceiver for Receiver {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let line = mark.line();
        match event {
            Event::DocumentStart => {
                self.stack.clear();
                self.docs.push(DocLines {
                    first_line: line,
                    paths: HashMap::new(),
                });
            }
            Event::Scalar(value, ..) => {
                self.node_path(line, Some(&value));
            }
            Event::Alias(_) => {
                self.node_path(line, None);
            }
            Event::MappingStart(..) => {
                // A mapping used as a key is not addressable by a dotted path; give it a placeholder.
                let path = self.node_path(line, None).unwrap_or_else(|| "?".into());
                self.stack.push(Frame::Mapping { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.node_path(line, None).unwrap_or_else(|| "?".into());
                self.stack.push(Frame::Sequence { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_the_line_of_their_key_across_documents() {
        let text = "# comment\napiVersion: v1\nspec:\n  steps:\n  - id: a\n    with:\n      url: x\n  - id: b\n---\nkind: Task\nspec:\n  schedule: {rrule: 'FREQ=DAILY'}\n";
        let docs = scan(text).expect("valid YAML");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].first_line, 2);
        assert_eq!(docs[0].line_of("spec.steps[0].with.url"), 7);
        assert_eq!(docs[0].line_of("spec.steps[1].id"), 8);
        assert_eq!(
            docs[0].line_of("spec.steps[1].uses"),
            8,
            "falls back to the item"
        );
        assert_eq!(
            docs[0].line_of("nothing.here"),
            2,
            "falls back to the document"
        );
        assert_eq!(docs[1].first_line, 9);
        assert_eq!(docs[1].line_of("spec.schedule.rrule"), 12);
    }

    #[test]
    fn a_syntax_error_has_its_line() {
        let err = scan("a: 1\nb: [1, 2\nc: 3\n").expect_err("unterminated flow sequence");
        assert!(err.line >= 2, "{err:?}");
    }
}
