//! The bench's one way of using the machine's two cores: a list split in halves, each half on
//! its own thread, the results in the list's order.

/// `work` applied to every item, the two halves of `items` on two threads.
pub fn on_two_threads<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    std::thread::scope(|scope| {
        let work = &work;
        let workers: Vec<_> = items
            .chunks(items.len().div_ceil(2).max(1))
            .map(|half| scope.spawn(move || half.iter().map(work).collect::<Vec<R>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a bench thread"))
            .collect()
    })
}
