//! Work shared across the machine's cores, its results kept in order.
//!
//! The analysis is pure and its parts independent (services against one model, items of an
//! object list, the files of a snapshot), so they can run side by side; the order of the
//! results, and so of every report, is the order of the input.
//!
//! Work started from a worker stays on that worker: one thread per core in all. More would not
//! run faster, and each thread that allocates takes an allocator arena of its own, tens of MB of
//! address space that a `ulimit -v` counts.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

thread_local! {
    /// Whether this thread already does a share of some work.
    static WORKER: Cell<bool> = const { Cell::new(false) };
}

/// How many threads new work may use: one per core, or this one alone inside a worker.
pub fn threads() -> usize {
    if WORKER.with(Cell::get) { 1 } else { std::thread::available_parallelism().map_or(1, |n| n.get()) }
}

/// Runs `work` on this thread as a worker; the thread is itself again afterwards, even if
/// `work` panics and the panic is caught.
fn as_worker<R>(work: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            WORKER.with(|w| w.set(self.0));
        }
    }
    let _restore = Restore(WORKER.with(|w| w.replace(true)));
    work()
}

/// `work` applied to each of `items` on every core, the results in the order of `items`. Each
/// worker takes the next item when it finishes one, so items of uneven cost (a namespace's
/// pods beside its few Services) keep every core busy to the end. A panic in a worker is
/// raised again here, as it would be on one thread.
pub fn in_parallel<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = threads().min(items.len());
    if threads < 2 {
        return items.iter().map(&work).collect();
    }
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let (work, next) = (&work, &next);
        let worker = move || {
            as_worker(|| {
                let mut done = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { return done };
                    done.push((i, work(item)));
                }
            })
        };
        // This thread is one of the workers.
        let workers: Vec<_> = (1..threads).map(|_| scope.spawn(worker)).collect();
        let mine = worker();
        mine.into_iter().chain(workers.into_iter().flat_map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))).collect()
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// `a` and `b` run side by side, `b` on this thread. A panic in `a` is raised again here.
pub fn join<A: Send, B>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B) -> (A, B) {
    if threads() < 2 {
        return (a(), b());
    }
    std::thread::scope(|scope| {
        let a = scope.spawn(|| as_worker(a));
        let b = as_worker(b);
        (a.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)), b)
    })
}

#[cfg(test)]
mod tests {
    use super::{in_parallel, join};
    use std::sync::{Condvar, Mutex};
    use std::time::Duration;

    #[test]
    fn work_shared_across_cores_comes_back_in_order() {
        let items: Vec<u32> = (0..1001).collect();
        assert_eq!(in_parallel(&items, |i| i * 2), items.iter().map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn work_started_by_a_worker_stays_on_its_thread() {
        let outer: Vec<u32> = (0..8).collect();
        let inner: Vec<u32> = (0..64).collect();
        let nested = in_parallel(&outer, |_| {
            let me = std::thread::current().id();
            let (left, right) = join(|| std::thread::current().id(), || in_parallel(&inner, |_| std::thread::current().id()));
            left == me && right.iter().all(|t| *t == me)
        });
        assert!(nested.iter().all(|on_its_thread| *on_its_thread));
    }

    #[test]
    fn a_caught_panic_leaves_the_thread_free_to_share_work() {
        let caught = std::panic::catch_unwind(|| join(|| (), || panic!("in b")));
        assert!(caught.is_err());
        assert_eq!(super::threads(), std::thread::available_parallelism().map_or(1, |n| n.get()));
    }

    #[test]
    fn both_halves_of_a_join_are_done() {
        assert_eq!(join(|| 1 + 1, || "b"), (2, "b"));
    }

    #[test]
    fn every_core_works_at_once() {
        // Each item waits (at most a few seconds) until one item per core has started: on one
        // thread, or with an item left to a worker that is not started, they never all meet.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let started = (Mutex::new(0), Condvar::new());
        let met = in_parallel(&vec![(); cores], |()| {
            let (count, arrived) = &started;
            let mut count = count.lock().unwrap();
            *count += 1;
            arrived.notify_all();
            let (count, _) = arrived.wait_timeout_while(count, Duration::from_secs(5), |c| *c < cores).unwrap();
            *count == cores
        });
        assert_eq!(met, vec![true; cores]);
    }
}
