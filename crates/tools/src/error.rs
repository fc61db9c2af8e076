//! Tool call errors, classified so the executor knows whether retrying can help.

/// Why a tool call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ToolError {
    /// The input is wrong; retrying the same input cannot help.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The tool ran and reported a failure.
    #[error("{message}")]
    Failed { message: String, retryable: bool },
    /// The call took longer than its timeout.
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The run was cancelled while the call was in flight.
    #[error("cancelled")]
    Cancelled,
    /// No tool has this name.
    #[error("unknown tool `{0}`")]
    NotFound(String),
    /// The call is not allowed (scopes, host allow-list).
    #[error("denied: {0}")]
    Denied(String),
}

impl ToolError {
    /// A failure that a retry may fix.
    pub fn retryable(message: impl Into<String>) -> Self {
        ToolError::Failed {
            message: message.into(),
            retryable: true,
        }
    }

    /// Whether a step retry can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            ToolError::Failed { retryable, .. } => *retryable,
            ToolError::Timeout(_) => true,
            _ => false,
        }
    }
}
