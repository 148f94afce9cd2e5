//! Memory accounting: the load-time plan checked against a board's budget, a check per clip,
//! and the measured peak (a counting global allocator plus the kernel's peak RSS).
//!
//! The plan adds up, in bytes:
//! - the process's resident memory after every stage was loaded and run once on zero inputs
//!   (code and libraries paged in, the verified package, weights, activation buffers), measured
//!   from `/proc/self/status`; where that cannot be read, the resident memory before loading plus
//!   the backends' weights and largest activation peak;
//! - the encoder input tensors built from a clip (frames, log-mel segments) and the encoded
//!   features kept for questions.
//!
//! Per-stage weights and the largest activation peak (a liveness walk of each backend's plan)
//! are listed as details of the first line.
//!
//! Clip files are checked as they are opened: the decoded clip plus the plan must fit too.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;
use thiserror::Error;

/// Bytes per MiB.
pub const MIB: f64 = 1024.0 * 1024.0;

/// Memory needed beyond the budget.
#[derive(Debug, Error)]
pub enum BudgetError {
    #[error("memory plan {} exceeds the {board} budget of {}: {}", mib(.plan.total()), mib(*.budget), .plan.breakdown())]
    PlanTooLarge { plan: MemoryPlan, budget: u64, board: String },
    #[error("{clip}: decoding the clip needs {}, but the {board} budget leaves {} after the plan ({}); use a shorter or smaller clip", mib(*.needs), mib(*.left), .plan.breakdown())]
    ClipTooLarge { clip: String, needs: u64, left: u64, board: String, plan: MemoryPlan },
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB)
}

/// One line of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanItem {
    pub name: String,
    pub bytes: u64,
}

/// The load-time memory plan: `items` add up to the total; `details` break an item down
/// (they are part of an item, not added).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MemoryPlan {
    pub items: Vec<PlanItem>,
    pub details: Vec<PlanItem>,
}

impl MemoryPlan {
    /// Adds a line.
    pub fn add(&mut self, name: impl Into<String>, bytes: u64) {
        self.items.push(PlanItem { name: name.into(), bytes });
    }

    /// Sum of all lines.
    pub fn total(&self) -> u64 {
        self.items.iter().map(|i| i.bytes).sum()
    }

    /// Adds a detail line (part of an item, not added to the total).
    pub fn detail(&mut self, name: impl Into<String>, bytes: u64) {
        self.details.push(PlanItem { name: name.into(), bytes });
    }

    /// `name 1.2 MiB, name 0.3 MiB, ... (of which: name 0.1 MiB, ...)` on one line.
    pub fn breakdown(&self) -> String {
        let list =
            |v: &[PlanItem]| v.iter().map(|i| format!("{} {}", i.name, mib(i.bytes))).collect::<Vec<_>>().join(", ");
        if self.details.is_empty() {
            list(&self.items)
        } else {
            format!("{} (of which: {})", list(&self.items), list(&self.details))
        }
    }

    /// Fails when the plan does not fit `budget` bytes of `board`.
    pub fn check(&self, budget: u64, board: &str) -> Result<(), BudgetError> {
        if self.total() > budget {
            return Err(BudgetError::PlanTooLarge { plan: self.clone(), budget, board: board.to_string() });
        }
        Ok(())
    }
}

/// A memory budget in force: bytes and the board it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Budget {
    pub bytes: u64,
    pub board: String,
}

/// Resident set size now and at its peak, in bytes, from `/proc/self/status` (Linux only).
pub fn rss() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |key: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        let kb: u64 = line[key.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// A global allocator that counts live and peak heap bytes; the `edgeqa` binary installs it.
pub struct CountingAlloc;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to the system allocator; only counters are updated.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller guarantees `ptr` came from this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `ptr`/`layout` are valid for this allocator.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

/// Heap bytes live now and at their peak, as counted by [`CountingAlloc`] (zero when the
/// running binary does not install it).
pub fn heap() -> (u64, u64) {
    (LIVE.load(Ordering::Relaxed) as u64, PEAK.load(Ordering::Relaxed) as u64)
}

/// Starts the peaks over, for measuring one piece of work: the counted heap's peak becomes what
/// is live now, and (Linux) the kernel's resident-set peak the resident set now, through
/// `/proc/self/clear_refs`. Returns whether the resident peak could be reset.
pub fn reset_peaks() -> bool {
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Measured memory, for reports.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    /// Load-time plan total.
    pub plan_mib: f64,
    /// The budget in force, if any.
    pub budget_mib: Option<f64>,
    pub board: Option<String>,
    /// Kernel-reported peak resident set size (Linux).
    pub peak_rss_mib: Option<f64>,
    /// Peak of live heap bytes counted by the allocator.
    pub peak_heap_mib: f64,
}

impl MemoryReport {
    /// Measures now.
    pub fn measure(plan: &MemoryPlan, budget: Option<&Budget>) -> MemoryReport {
        MemoryReport {
            plan_mib: plan.total() as f64 / MIB,
            budget_mib: budget.map(|b| b.bytes as f64 / MIB),
            board: budget.map(|b| b.board.clone()),
            peak_rss_mib: rss().map(|(_, hwm)| hwm as f64 / MIB),
            peak_heap_mib: heap().1 as f64 / MIB,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_totals_and_checks() {
        let mut p = MemoryPlan::default();
        p.add("weights", 3 * 1024 * 1024);
        p.add("activations", 1024 * 1024);
        assert_eq!(p.total(), 4 * 1024 * 1024);
        assert!(p.check(4 * 1024 * 1024, "b").is_ok());
        let e = p.check(3 * 1024 * 1024, "tiny-board").unwrap_err().to_string();
        assert!(e.contains("4.0 MiB exceeds the tiny-board budget of 3.0 MiB"), "{e}");
        assert!(e.contains("weights 3.0 MiB, activations 1.0 MiB"), "{e}");
    }

    #[test]
    fn rss_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            let (now, peak) = rss().unwrap();
            assert!(now > 0 && peak >= now);
        }
    }
}
