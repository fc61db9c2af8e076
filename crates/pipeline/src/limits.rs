//! Bounds on what a pipeline may ask of the worker (docs/security.md, "Manifests and bounds": bounded
//! inputs with clear errors). One place, so the operator, the CLI and the worker agree.

/// Deepest nesting of a rendered value (a template plus whatever it substitutes), in levels of
/// arrays and objects. Tool arguments deeper than this are almost surely a mistake or abuse.
pub const MAX_DEPTH: usize = 64;

/// Largest rendered value, in bytes of compact JSON (counted as rendering goes, so a template
/// that would explode is stopped early rather than built and then measured).
pub const MAX_RENDERED_BYTES: usize = 1024 * 1024;

/// Longest text between `${` and `}`.
pub const MAX_TEMPLATE_EXPRESSION_LEN: usize = 512;

/// Longest `if` expression, in bytes.
pub const MAX_CONDITION_LEN: usize = 1024;

/// Deepest nesting of brackets and parentheses in an `if` expression. The JMESPath parser is
/// recursive; this keeps it far from the stack limit of a runtime worker thread.
pub const MAX_CONDITION_NESTING: usize = 32;

/// Most an `if` expression may multiply the size of what it reads, by a static estimate
/// over its syntax tree (a multi-select of k parts counts k, a pipe or projection the product
/// of its sides). `[@,@][] | [@,@][] | …` doubles per stage; this stops such expressions at
/// validation instead of letting one evaluation fill the worker's memory.
pub const MAX_CONDITION_GROWTH: u64 = 1_000;

/// Longest string a condition's `to_string` or `join` may build, in bytes. The growth
/// estimate above counts values, which are shared references while a condition runs; these two
/// functions write them out, so a 1,000× growth of a 4 MB context would be a 4 GB string.
pub const MAX_CONDITION_STRING_BYTES: usize = 1024 * 1024;

/// Most attempts a retry policy may ask for (the first attempt included).
pub const MAX_RETRY_ATTEMPTS: u32 = 100;

/// Schemas the [`crate::SchemaCache`] keeps compiled before it starts evicting.
pub const SCHEMA_CACHE_CAPACITY: usize = 1024;

/// Most schema violations reported for one check; the rest are counted, not listed.
pub const MAX_REPORTED_VIOLATIONS: usize = 20;
