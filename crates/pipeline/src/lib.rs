//! Ordinaut's pipeline model, pure (no I/O): the `${…}` templates of step arguments and
//! outputs, JMESPath `if` conditions, JSON Schema checks of tool inputs and outputs, retry
//! backoff, and the validation of a whole Pipeline before it runs (`ordinaut validate`, the
//! operator). The worker builds a [`Context`] per run and drives the rest.

pub mod condition;
pub mod context;
pub mod limits;
pub mod model;
pub mod retry;
pub mod schema;
pub mod template;
pub mod validate;

pub use condition::{Condition, ConditionError, compile_condition};
pub use context::{Context, RunInfo, Secrets, TaskInfo};
pub use model::{CompiledPipeline, CompiledStep, ToolRef, compile_pipeline};
pub use retry::{EffectiveRetry, RetryError, backoff_delay, resolve_retry};
pub use schema::{SchemaCache, SchemaError, SchemaViolation, Violation};
pub use template::{RenderError, TemplateError, render};
pub use validate::{ValidationIssue, validate_params, validate_pipeline};
