//! `ordinaut validate -f FILE_OR_DIR…`: checks Task, Pipeline, McpServer and Agent manifests
//! without a cluster: the CRD schema (through the serde types, unknown fields rejected), the
//! rules the API server's CEL enforces, and the semantic rules the operator applies
//! (schedules, timezones, durations, pipelines, params). Prints `file:line: field.path:
//! message` per problem on stdout and a summary line per file on stderr.

mod lines;
pub mod rules;

use std::path::PathBuf;

use clap::Args;

use crate::CliError;
use lines::DocLines;

/// Arguments of `ordinaut validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Files or directories to validate (directories: every `.yaml`/`.yml` file below them).
    /// Multi-document files are read document by document; kinds other than Ordinaut's are
    /// skipped.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
}

/// One problem, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file, self.line, self.path, self.message
        )
    }
}

/// A document read from a file, with where its fields are.
pub struct Document {
    pub file: String,
    pub lines: DocLines,
    /// The document's own text, for typed deserialization with serde's error paths.
    pub text: String,
    pub value: serde_yaml::Value,
}

pub fn run(args: ValidateArgs) -> Result<(), CliError> {
    let files = expand(&args.files)?;
    let mut docs = Vec::new();
    let mut problems = Vec::new();
    let mut per_file = Vec::new();
    for path in &files {
        let file = path.display().to_string();
        let bytes = std::fs::read(path)
            .map_err(|e| CliError::invalid(anyhow::anyhow!("cannot read {file}: {e}")))?;
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                problems.push(not_text(&file, &e));
                per_file.push((file, 0));
                continue;
            }
        };
        let (file_docs, file_problems) = read_documents(&file, &text);
        per_file.push((file, file_docs.len()));
        docs.extend(file_docs);
        problems.extend(file_problems);
    }
    problems.extend(rules::check_all(&docs));
    problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    problems.dedup();
    for p in &problems {
        println!("{p}");
    }
    for (file, count) in &per_file {
        let n = problems.iter().filter(|p| &p.file == file).count();
        let documents = if *count == 1 { "document" } else { "documents" };
        if n == 0 {
            eprintln!("{file}: ok ({count} {documents})");
        } else {
            let s = if n == 1 { "" } else { "s" };
            eprintln!("{file}: {n} problem{s} ({count} {documents})");
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        let s = if problems.len() == 1 { "" } else { "s" };
        Err(CliError::failed(anyhow::anyhow!(
            "{} problem{s} found",
            problems.len()
        )))
    }
}

/// Largest manifest file read (the documents in it are limited one by one too).
pub const MAX_MANIFEST_FILE_BYTES: usize = 16 * 1024 * 1024;

/// Largest single document (one object): Kubernetes itself refuses objects much over 1 MiB.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// A file that is not UTF-8 text (a binary file, another encoding): a problem at the line of
/// the first invalid byte, never "ok (0 documents)".
fn not_text(file: &str, e: &std::string::FromUtf8Error) -> Problem {
    let at = e.utf8_error().valid_up_to();
    let line = 1 + e.as_bytes()[..at].iter().filter(|b| **b == b'\n').count();
    Problem {
        file: file.to_string(),
        line,
        path: "(file)".into(),
        message: format!(
            "is not YAML text: invalid UTF-8 at byte {at} (a binary file or another encoding; save manifests as UTF-8)"
        ),
    }
}

/// The YAML files named, directories expanded (sorted, recursive).
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            ordinaut_gateway::writer::dir::walk(path, &mut out).map_err(|e| {
                CliError::invalid(anyhow::anyhow!("cannot list {}: {e}", path.display()))
            })?;
        } else if path.exists() {
            out.push(path.clone());
        } else {
            return Err(CliError::invalid(anyhow::anyhow!(
                "{}: no such file or directory",
                path.display()
            )));
        }
    }
    Ok(out)
}

/// The non-empty documents of one file, or the syntax error that stops it.
pub fn read_documents(file: &str, text: &str) -> (Vec<Document>, Vec<Problem>) {
    if text.len() > MAX_MANIFEST_FILE_BYTES {
        let problem = Problem {
            file: file.to_string(),
            line: 1,
            path: "(file)".into(),
            message: format!(
                "is {} bytes, over the limit of {MAX_MANIFEST_FILE_BYTES} (limit: manifest file size); \
                 split it into several files",
                text.len()
            ),
        };
        return (vec![], vec![problem]);
    }
    let scanned = match lines::scan(text) {
        Ok(docs) => docs,
        Err(e) => {
            let problem = Problem {
                file: file.to_string(),
                line: e.line,
                path: "(yaml)".into(),
                message: e.message,
            };
            return (vec![], vec![problem]);
        }
    };
    let all_lines: Vec<&str> = text.split_inclusive('\n').collect();
    let starts: Vec<usize> = scanned.iter().map(|d| d.first_line).collect();
    let mut docs = Vec::new();
    let mut problems = Vec::new();
    for (i, lines) in scanned.into_iter().enumerate() {
        // The document's text: from its first line up to the next document's first line.
        // Leading lines are blanked rather than dropped so serde's line numbers stay the file's.
        let end = starts.get(i + 1).map_or(all_lines.len(), |next| next - 1);
        let own = &all_lines[lines.first_line.saturating_sub(1).min(end)..end];
        let size: usize = own.iter().map(|l| l.len()).sum();
        if size > MAX_DOCUMENT_BYTES {
            problems.push(Problem {
                file: file.to_string(),
                line: lines.first_line,
                path: "(document)".into(),
                message: format!(
                    "document is {size} bytes, over the limit of {MAX_DOCUMENT_BYTES} \
                     (limit: manifest size; the Kubernetes API stores objects of about 1.5 MiB at \
                     most): move large data out of the spec, e.g. into a Secret or agent memory"
                ),
            });
            continue;
        }
        let mut doc_text = "\n".repeat(lines.first_line.saturating_sub(1));
        doc_text.extend(own.iter().copied());
        match serde_yaml::from_str::<serde_yaml::Value>(&doc_text) {
            Ok(serde_yaml::Value::Null) => {}
            Ok(value) => docs.push(Document {
                file: file.to_string(),
                lines,
                text: doc_text,
                value,
            }),
            Err(e) => problems.push(Problem {
                file: file.to_string(),
                line: e.location().map_or(lines.first_line, |l| l.line()),
                path: "(yaml)".into(),
                message: strip_location(&e),
            }),
        }
    }
    (docs, problems)
}

/// serde_yaml's message without its trailing ` at line L column C`.
pub fn strip_location(e: &serde_yaml::Error) -> String {
    let message = e.to_string();
    match e.location() {
        Some(l) => message
            .strip_suffix(&format!(" at line {} column {}", l.line(), l.column()))
            .unwrap_or(&message)
            .to_string(),
        None => message,
    }
}
