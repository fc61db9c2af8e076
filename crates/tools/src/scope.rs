//! Agent scopes: globs over tool names (`weather.*`, `everything.echo`, `*`).

/// Built-in tools live under these prefixes; a Task without an Agent may use only them.
pub const BUILTIN_PREFIXES: &[&str] = &["core.", "http."];

/// `true` if `tool` is a built-in.
pub fn is_builtin(tool: &str) -> bool {
    BUILTIN_PREFIXES.iter().any(|p| tool.starts_with(p))
}

/// Matches a glob with `*` (any run of characters, dots included) and `?` (one character).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matcher with single-star backtracking: linear in practice, no recursion.
    let (mut pi, mut ti) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_tool_names() {
        assert!(glob_match("weather.*", "weather.forecast"));
        assert!(!glob_match("weather.*", "weatherman.forecast"));
        assert!(glob_match("everything.echo", "everything.echo"));
        assert!(!glob_match("everything.echo", "everything.echo2"));
        assert!(glob_match("*", "anything.at_all"));
        assert!(glob_match("*.read_*", "fs.read_file"));
        assert!(glob_match("fs.?ead", "fs.read"));
        assert!(!glob_match("", "x"));
        assert!(glob_match("a*b*c", "a-x-b-y-c"));
        assert!(!glob_match("a*b*c", "a-x-b-y"));
    }

    #[test]
    fn builtins_are_recognised_by_prefix() {
        assert!(is_builtin("core.echo"));
        assert!(is_builtin("http.request"));
        assert!(!is_builtin("corex.echo"));
        assert!(!is_builtin("weather.now"));
    }
}
