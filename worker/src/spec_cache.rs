//! The worker's cache of compiled Task specs, keyed by the Task and checked against the spec's
//! content. Not by `metadata.generation`: a Pipeline edit changes the spec the operator
//! projects (it inlines the referenced Pipeline) without changing the Task's generation, and a
//! cache keyed by generation kept running the old steps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use uuid::Uuid;

/// Compiled specs (`T`) per Task, each with the spec JSON it was compiled from.
pub struct SpecCache<T> {
    entries: Mutex<HashMap<Uuid, (Value, Arc<T>)>>,
    capacity: usize,
}

impl<T> SpecCache<T> {
    /// A cache that forgets everything when it holds more than `capacity` Tasks.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::default(),
            capacity,
        }
    }

    /// The compiled form of `spec` for `task`: the cached one when it was compiled from an
    /// equal spec, else `compile(spec)`, cached.
    pub fn get_or_compile<E>(
        &self,
        task: Uuid,
        spec: &Value,
        compile: impl FnOnce(&Value) -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        if let Some((raw, compiled)) = self.lock().get(&task)
            && raw == spec
        {
            return Ok(compiled.clone());
        }
        let compiled = Arc::new(compile(spec)?);
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(task, (spec.clone(), compiled.clone()));
        Ok(compiled)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (Value, Arc<T>)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn a_changed_spec_under_the_same_task_is_compiled_again_an_equal_one_is_not() {
        let cache = SpecCache::<String>::new(100);
        let task = Uuid::new_v4();
        let compiles = std::cell::Cell::new(0);
        let compile = |v: &Value| -> Result<String, ()> {
            compiles.set(compiles.get() + 1);
            Ok(v["pipeline"]["steps"][0]["with"]["msg"].to_string())
        };
        let v1 = json!({"pipeline": {"steps": [{"with": {"msg": "v1"}}]}});
        let v2 = json!({"pipeline": {"steps": [{"with": {"msg": "v2"}}]}});
        assert_eq!(*cache.get_or_compile(task, &v1, compile).unwrap(), "\"v1\"");
        assert_eq!(*cache.get_or_compile(task, &v1, compile).unwrap(), "\"v1\"");
        assert_eq!(compiles.get(), 1);
        // The Pipeline was edited: same Task, same generation, new content.
        assert_eq!(*cache.get_or_compile(task, &v2, compile).unwrap(), "\"v2\"");
        assert_eq!(compiles.get(), 2);
    }

    #[test]
    fn a_failed_compile_is_not_cached_and_the_cache_is_bounded() {
        let cache = SpecCache::<u8>::new(2);
        let task = Uuid::new_v4();
        assert!(
            cache
                .get_or_compile(task, &json!(1), |_| Err("bad"))
                .is_err()
        );
        assert_eq!(
            *cache
                .get_or_compile(task, &json!(1), |_| Ok::<_, ()>(7))
                .unwrap(),
            7
        );
        for _ in 0..5 {
            cache
                .get_or_compile(Uuid::new_v4(), &json!(1), |_| Ok::<_, ()>(0))
                .unwrap();
        }
        assert!(cache.lock().len() <= 2);
    }
}
