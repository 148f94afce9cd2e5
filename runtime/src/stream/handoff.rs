//! The bounded hand-off between a capture thread and the thread that preprocesses and encodes:
//! a fixed set of N buffers, allocated once, cycling between a free list and a queue of full
//! ones (`heapless` deques of capacity N). Never an unbounded queue:
//! - [`Overflow::DropOldest`] (devices, files paced in real time): when no buffer is free the
//!   producer takes back the oldest full one, and the drop is counted;
//! - [`Overflow::Block`] (files read as fast as possible): the producer waits, so no data is
//!   lost and results are reproducible.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use heapless::Deque;

/// Buffers in a hand-off.
pub const SLOTS: usize = 4;

/// What the producer does when every buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Take back the oldest full buffer and count a drop.
    DropOldest,
    /// Wait for the consumer.
    Block,
}

struct State<T> {
    free: Deque<T, SLOTS>,
    full: Deque<T, SLOTS>,
    closed: bool,
}

/// A bounded hand-off of [`SLOTS`] buffers of type `T`.
pub struct Handoff<T> {
    state: Mutex<State<T>>,
    changed: Condvar,
    overflow: Overflow,
    dropped: AtomicU64,
}

impl<T> std::fmt::Debug for Handoff<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff").field("overflow", &self.overflow).field("dropped", &self.dropped()).finish()
    }
}

impl<T> Handoff<T> {
    /// A hand-off cycling the buffers `make()` creates ([`SLOTS`] of them).
    pub fn new(overflow: Overflow, mut make: impl FnMut() -> T) -> Handoff<T> {
        let mut free = Deque::new();
        for _ in 0..SLOTS {
            // Cannot fail: the deque holds exactly SLOTS.
            let _ = free.push_back(make());
        }
        Handoff {
            state: Mutex::new(State { free, full: Deque::new(), closed: false }),
            changed: Condvar::new(),
            overflow,
            dropped: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A buffer to fill: a free one, else (dropping) the oldest full one, else (blocking) the
    /// next one the consumer frees. `None` once closed.
    pub fn acquire(&self) -> Option<T> {
        let mut s = self.lock();
        loop {
            if s.closed {
                return None;
            }
            if let Some(buf) = s.free.pop_front() {
                return Some(buf);
            }
            if self.overflow == Overflow::DropOldest
                && let Some(buf) = s.full.pop_front()
            {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return Some(buf);
            }
            s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Queues a filled buffer for the consumer.
    pub fn publish(&self, buf: T) {
        let mut s = self.lock();
        // Cannot overflow: at most SLOTS buffers exist.
        let _ = s.full.push_back(buf);
        self.changed.notify_all();
    }

    /// Returns an unused buffer to the free list (a producer that got nothing to put in it).
    pub fn give_back(&self, buf: T) {
        let mut s = self.lock();
        let _ = s.free.push_back(buf);
        self.changed.notify_all();
    }

    /// The oldest filled buffer, waiting for one; `None` when closed and drained.
    pub fn take(&self) -> Option<T> {
        let mut s = self.lock();
        loop {
            if let Some(buf) = s.full.pop_front() {
                return Some(buf);
            }
            if s.closed {
                return None;
            }
            s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Returns a consumed buffer to the free list.
    pub fn release(&self, buf: T) {
        self.give_back(buf);
    }

    /// No more buffers will be published (end of source or shutdown); wakes everyone.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// Buffers dropped because the consumer was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn drop_oldest_keeps_the_newest_and_counts() {
        let h = Handoff::new(Overflow::DropOldest, || 0u32);
        for k in 1..=6 {
            let _ = h.acquire().unwrap();
            h.publish(k);
        }
        assert_eq!(h.dropped(), 2);
        h.close();
        let got: Vec<u32> = std::iter::from_fn(|| h.take()).collect();
        assert_eq!(got, vec![3, 4, 5, 6]);
    }

    #[test]
    fn block_loses_nothing() {
        let h = Arc::new(Handoff::new(Overflow::Block, || 0u32));
        let producer = {
            let h = Arc::clone(&h);
            std::thread::spawn(move || {
                for k in 1..=100 {
                    let _ = h.acquire().unwrap();
                    h.publish(k);
                }
                h.close();
            })
        };
        let mut got = Vec::new();
        while let Some(v) = h.take() {
            got.push(v);
            h.release(0);
        }
        producer.join().unwrap();
        assert_eq!(got, (1..=100).collect::<Vec<_>>());
        assert_eq!(h.dropped(), 0);
    }
}
