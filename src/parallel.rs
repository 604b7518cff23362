//! Work shared across the machine's cores, its results kept in order.
//!
//! The analysis is pure and its parts independent (services against one model, items of an
//! object list), so they can run side by side; the order of the results, and so of every
//! report, is the order of the input.

/// `work` applied to each of `items` on every core, the results in the order of `items`. A
/// panic in a worker is raised again here, as it would be on one thread.
pub fn in_parallel<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || items.len() < 2 {
        return items.iter().map(&work).collect();
    }
    let share = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let work = &work;
        let workers: Vec<_> = items.chunks(share).map(|chunk| scope.spawn(move || chunk.iter().map(work).collect::<Vec<R>>())).collect();
        workers.into_iter().flat_map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::in_parallel;
    use std::collections::HashSet;

    #[test]
    fn work_shared_across_cores_comes_back_in_order() {
        let items: Vec<u32> = (0..1001).collect();
        let threads: std::sync::Mutex<HashSet<std::thread::ThreadId>> = Default::default();
        let out = in_parallel(&items, |i| {
            threads.lock().unwrap().insert(std::thread::current().id());
            i * 2
        });
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(threads.lock().unwrap().len(), cores.min(items.len()), "one worker per core");
    }
}
