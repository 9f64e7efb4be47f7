//! What a request may do, as decided by the embedder's authorization hook.

/// The embedder's decision for one request (see [`WebScope::authorize`](super::WebScope::authorize)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Nothing: every page and endpoint answers 403.
    Deny,
    /// Pages and GET endpoints; actions answer 403 (the default without a hook).
    Read,
    /// Everything, including replay, pause, resume, trigger and backfill.
    Act,
}

impl Access {
    /// Whether this decision allows reading.
    pub fn can_read(self) -> bool {
        self >= Access::Read
    }

    /// Whether this decision allows actions that change state.
    pub fn can_act(self) -> bool {
        self >= Access::Act
    }
}

#[cfg(test)]
mod tests {
    use super::Access;

    #[test]
    fn each_level_includes_the_ones_below() {
        assert!(!Access::Deny.can_read() && !Access::Deny.can_act());
        assert!(Access::Read.can_read() && !Access::Read.can_act());
        assert!(Access::Act.can_read() && Access::Act.can_act());
    }
}
