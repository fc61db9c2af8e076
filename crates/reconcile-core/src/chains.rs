//! Chains of Tasks (`on.taskFinished`), pure: finding the cycle a Task closes, for the
//! operator (against the namespace's other Tasks) and `ordinaut validate` (against a folder).
//! A cycle that slips through (two Tasks applied at the same instant) is stopped at run time
//! by the depth carried in each chained event (`ordinaut_store::MAX_CHAIN_DEPTH`).

use std::collections::BTreeMap;

use crate::validate::Problem;
use ordinaut_api::TaskSpec;
use ordinaut_api::constants::reason;

/// The Task `spec` follows (`on.taskFinished.name`), if any.
pub fn follows(spec: &TaskSpec) -> Option<&str> {
    spec.schedule
        .on
        .as_ref()
        .and_then(|on| on.task_finished.as_ref())
        .map(|t| t.name.as_str())
}

/// The cycle through `start` in `links` (task → the Task it follows), as the names met from
/// `start` until it comes back (`[a, b]` for a → b → a). `None` when `start` is on none.
pub fn cycle_through(links: &BTreeMap<String, String>, start: &str) -> Option<Vec<String>> {
    let mut path = vec![start.to_string()];
    let mut at = start;
    while let Some(next) = links.get(at) {
        if next == start {
            return Some(path);
        }
        if path.iter().any(|p| p == next) || path.len() > links.len() {
            return None; // a cycle further up that `start` is not on
        }
        path.push(next.clone());
        at = next;
    }
    None
}

/// The problem of a Task on a cycle.
pub fn cycle_problem(cycle: &[String]) -> Problem {
    let mut names = cycle.to_vec();
    names.push(cycle[0].clone());
    Problem {
        path: "spec.schedule.on.taskFinished.name".into(),
        message: format!(
            "taskFinished triggers form a cycle ({}), which would run forever; make one of \
             these Tasks run on something else",
            names.join(" after ")
        ),
        reason: reason::INVALID_SCHEDULE,
    }
}

/// The cycle problem of Task `name` (with `spec`) among the other Tasks' links of its
/// namespace (its own stored link, if any, is replaced by `spec`'s).
pub fn task_cycle(
    name: &str,
    spec: &TaskSpec,
    others: impl IntoIterator<Item = (String, String)>,
) -> Option<Problem> {
    let target = follows(spec)?;
    let mut links: BTreeMap<String, String> = others.into_iter().collect();
    links.insert(name.to_string(), target.to_string());
    cycle_through(&links, name).map(|c| cycle_problem(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn finds_the_cycle_a_task_is_on_and_only_that() {
        let l = links(&[("a", "b"), ("b", "c"), ("c", "a"), ("d", "a"), ("e", "e")]);
        assert_eq!(
            cycle_through(&l, "a"),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(
            cycle_through(&l, "c"),
            Some(vec!["c".into(), "a".into(), "b".into()])
        );
        assert_eq!(
            cycle_through(&l, "d"),
            None,
            "d follows the cycle but is not on it"
        );
        assert_eq!(cycle_through(&l, "e"), Some(vec!["e".into()]));
        assert_eq!(cycle_through(&links(&[("a", "b")]), "a"), None);
    }

    #[test]
    fn the_problem_names_the_cycle_and_the_field() {
        let p = cycle_problem(&["a".into(), "b".into()]);
        assert_eq!(p.path, "spec.schedule.on.taskFinished.name");
        assert!(p.message.contains("(a after b after a)"), "{}", p.message);
    }
}
