//! `Cancel`: a cheap, cloneable flag that asks a running dispatch to stop. Whoever holds a clone
//! can trip it (an MCP `notifications/cancelled`, `dispatch_cancel`, server shutdown); the child
//! supervisor polls it between waits and kills the child's process group when it is set.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Self {
        Cancel::default()
    }

    pub fn trip(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_tripped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag() {
        let a = Cancel::new();
        let b = a.clone();
        assert!(!b.is_tripped());
        a.trip();
        assert!(b.is_tripped());
    }
}
