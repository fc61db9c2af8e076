//! Turns an MCP `tools/call` result into a step's output or failure.
//!
//! * `isError: true` → [`ToolError::Failed`] (not retryable: the tool ran and said no), with
//!   the text items as the message.
//! * `structuredContent` present → it is the output, as is (the tool's output schema, when
//!   declared, describes exactly this value).
//! * otherwise → `{"content": [<MCP content items, as JSON>], "text": "<the text items,
//!   joined by newlines>"}`: always an object, so templates can use `${steps.x.text}` for the
//!   common single-text answer and `${steps.x.content}` for images and resources.

use crate::ToolError;
use serde_json::{Value, json};

/// The step output (or failure) for a `tools/call` result given as MCP JSON
/// (`{"content": [...], "structuredContent": ..., "isError": ...}`).
pub fn render_result(result: &Value) -> Result<Value, ToolError> {
    let content: &[Value] = result
        .get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let text = content
        .iter()
        .filter(|c| c.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|c| c.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n");
    if result.get("isError").and_then(Value::as_bool) == Some(true) {
        let message = if text.is_empty() {
            "the tool reported an error without a message".to_string()
        } else {
            text
        };
        return Err(ToolError::Failed {
            message,
            retryable: false,
        });
    }
    match result.get("structuredContent") {
        Some(structured) => Ok(structured.clone()),
        None => Ok(json!({"content": content, "text": text})),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn structured_content_is_the_output() {
        let r = json!({"content": [{"type": "text", "text": "{\"t\":1}"}], "structuredContent": {"t": 1}});
        assert_eq!(render_result(&r).unwrap(), json!({"t": 1}));
    }

    #[test]
    fn content_without_structure_becomes_content_and_text() {
        let r = json!({"content": [
            {"type": "text", "text": "a"},
            {"type": "image", "data": "AAA", "mimeType": "image/png"},
            {"type": "text", "text": "b"}
        ]});
        let out = render_result(&r).unwrap();
        assert_eq!(out["text"], "a\nb");
        assert_eq!(out["content"].as_array().unwrap().len(), 3);
        assert_eq!(
            render_result(&json!({})).unwrap(),
            json!({"content": [], "text": ""})
        );
    }

    #[test]
    fn is_error_fails_the_step_with_the_text_and_is_not_retryable() {
        let r = json!({"content": [{"type": "text", "text": "city not found"}], "isError": true});
        let err = render_result(&r).unwrap_err();
        assert_eq!(
            err,
            ToolError::Failed {
                message: "city not found".into(),
                retryable: false
            }
        );
        let err = render_result(&json!({"isError": true, "content": []})).unwrap_err();
        assert!(err.to_string().contains("without a message"));
    }
}
