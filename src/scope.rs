//! Scopes: what a job runs for.
//!
//! - [`Scope`]: a `(kind, id)` pair such as `("workspace", "42")`; [`Scope::global`] for unscoped jobs;
//!   [`Scope::validate`] checks it can be stored ([`Scope::MAX_LEN`]).
//! - [`Scopes`]: where a job's scopes come from: a fixed list or an async provider called every tick.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;

/// What a job runs for: one execution row exists per `(job, scope, plan_time)`.
///
/// Both parts must be storable the same way on every backend (see [`Scope::validate`]): not
/// empty, no NUL byte, at most [`Scope::MAX_LEN`] bytes each. A static list given to
/// [`JobSpecBuilder::scopes`](crate::JobSpecBuilder::scopes) is checked at `build()`; scopes from
/// a provider are checked at every tick, and an invalid one is skipped (logged) without holding
/// up the others.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Scope {
    /// The kind of thing, e.g. `workspace` or `tenant`.
    pub kind: String,
    /// The identifier within the kind, e.g. `42`.
    pub id: String,
}

impl Scope {
    /// The text stored for jobs without scopes, in both columns, so the unique key never holds NULL.
    pub const GLOBAL: &'static str = "global";

    /// The longest `kind` and the longest `id`, in bytes (UTF-8): 512.
    ///
    /// Both are part of the unique key `(job_name, scope_kind, scope_id, plan_time)`; PostgreSQL
    /// refuses a btree index entry over about 2.7 KB, so together with a job name (at most
    /// [`JobSpec::MAX_NAME_LEN`](crate::JobSpec::MAX_NAME_LEN)) they stay well under it. A longer
    /// natural identifier can be hashed.
    pub const MAX_LEN: usize = 512;

    /// A scope of `kind` and `id`.
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        Scope {
            kind: kind.into(),
            id: id.into(),
        }
    }

    /// The scope of unscoped jobs: `("global", "global")`.
    pub fn global() -> Self {
        Scope::new(Self::GLOBAL, Self::GLOBAL)
    }

    /// Checks that the scope can be stored on every backend: `kind` and `id` are not empty, hold
    /// no NUL byte (PostgreSQL `text` cannot store it) and are at most [`Scope::MAX_LEN`] bytes
    /// each. The error names the scope (a long id cut short) and the rule it breaks.
    ///
    /// ```
    /// use cronlease::Scope;
    ///
    /// assert!(Scope::new("workspace", "42").validate().is_ok());
    /// let error = Scope::new("workspace", "").validate().unwrap_err();
    /// assert_eq!(error, "scope `workspace:` has an empty id: give every scope a kind and an id");
    /// ```
    pub fn validate(&self) -> Result<(), String> {
        for (part, value) in [("kind", &self.kind), ("id", &self.id)] {
            if value.is_empty() {
                return Err(format!(
                    "scope `{}` has an empty {part}: give every scope a kind and an id",
                    self.shown()
                ));
            }
            if value.contains('\0') {
                return Err(format!(
                    "scope `{}` has a NUL byte in its {part}, which PostgreSQL cannot store: remove it",
                    self.shown()
                ));
            }
            if value.len() > Self::MAX_LEN {
                let article = if part == "id" { "an" } else { "a" };
                return Err(format!(
                    "scope `{}` has {article} {part} of {} bytes, over the limit of {} (Scope::MAX_LEN): use a shorter {part}, e.g. a hash of it",
                    self.shown(),
                    value.len(),
                    Self::MAX_LEN
                ));
            }
        }
        Ok(())
    }

    /// The scope for a message: control characters escaped, long parts cut short.
    fn shown(&self) -> String {
        format!("{}:{}", shorten(&self.kind), shorten(&self.id))
    }
}

/// `text` with control characters escaped, cut after 40 characters (the rest counted in bytes).
fn shorten(text: &str) -> String {
    const KEEP: usize = 40;
    let cut = text
        .char_indices()
        .nth(KEEP)
        .map_or(text.len(), |(index, _)| index);
    let mut shown: String = text[..cut]
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect();
    if cut < text.len() {
        shown.push_str(&format!("... ({} more bytes)", text.len() - cut));
    }
    shown
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.id)
    }
}

/// The error type a scope provider may return.
pub type ProviderError = Box<dyn std::error::Error + Send + Sync>;

type ProviderFn =
    dyn Fn() -> BoxFuture<'static, Result<Arc<[Scope]>, ProviderError>> + Send + Sync + 'static;

/// Where a job's scopes come from.
///
/// Default: the single [`Scope::global`].
#[derive(Clone)]
pub enum Scopes {
    /// A list fixed at registration.
    Static(Arc<[Scope]>),
    /// Called at every tick, so scopes can follow a tenants table. An error skips the job for that
    /// tick (logged); other jobs keep running.
    Provider(Arc<ProviderFn>),
}

impl Scopes {
    /// A fixed list of scopes.
    pub fn list(scopes: impl IntoIterator<Item = Scope>) -> Self {
        Scopes::Static(scopes.into_iter().collect())
    }

    /// Scopes fetched at every tick by an async function.
    pub fn provider<F, Fut>(f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<Scope>, ProviderError>> + Send + 'static,
    {
        Scopes::Provider(Arc::new(move || {
            let scopes = f();
            Box::pin(async move { scopes.await.map(Arc::from) })
        }))
    }

    /// Scopes fetched at every tick by an async function that hands out a shared list: for a
    /// provider that keeps its scopes in memory (refreshed from a tenants table now and then)
    /// and returns the same `Arc` until they change. A tick then copies no scope, and, handed
    /// the list it walked last, knows without comparing them one by one that the scopes are
    /// the same. A million scopes cost about 100 MiB a copy, so this is what keeps a tick's
    /// peak memory near the memory between ticks.
    ///
    /// ```
    /// use std::sync::{Arc, RwLock};
    /// use cronlease::{Scope, Scopes};
    ///
    /// let tenants: Arc<RwLock<Arc<[Scope]>>> =
    ///     Arc::new(RwLock::new(Arc::from(vec![Scope::new("tenant", "1")])));
    /// let current = tenants.clone();
    /// let scopes = Scopes::shared_provider(move || {
    ///     let list = current.read().unwrap().clone();
    ///     async move { Ok(list) }
    /// });
    /// // Elsewhere, when the tenants table changes: a new list, which the next tick walks.
    /// *tenants.write().unwrap() = Arc::from(vec![Scope::new("tenant", "1"), Scope::new("tenant", "2")]);
    /// # drop(scopes);
    /// ```
    pub fn shared_provider<F, Fut>(f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Arc<[Scope]>, ProviderError>> + Send + 'static,
    {
        Scopes::Provider(Arc::new(move || Box::pin(f())))
    }

    /// Resolves the current scopes.
    pub(crate) async fn resolve(&self) -> Result<Arc<[Scope]>, ProviderError> {
        match self {
            Scopes::Static(list) => Ok(list.clone()),
            Scopes::Provider(f) => f().await,
        }
    }
}

impl Default for Scopes {
    fn default() -> Self {
        Scopes::list([Scope::global()])
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scopes::Static(list) => f.debug_tuple("Static").field(&list.len()).finish(),
            Scopes::Provider(_) => f.write_str("Provider(..)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storable_scopes_pass() {
        assert!(Scope::global().validate().is_ok());
        assert!(Scope::new("workspace", "42").validate().is_ok());
        let longest = "é".repeat(Scope::MAX_LEN / 2);
        assert!(Scope::new(longest.clone(), longest).validate().is_ok());
    }

    #[test]
    fn empty_parts_are_refused() {
        let error = Scope::new("", "42").validate().unwrap_err();
        assert_eq!(
            error,
            "scope `:42` has an empty kind: give every scope a kind and an id"
        );
        let error = Scope::new("workspace", "").validate().unwrap_err();
        assert!(error.contains("has an empty id"), "{error}");
    }

    #[test]
    fn nul_bytes_are_refused_and_shown_escaped() {
        let error = Scope::new("workspace", "4\u{0}2").validate().unwrap_err();
        assert_eq!(
            error,
            "scope `workspace:4\\u{0}2` has a NUL byte in its id, which PostgreSQL cannot store: remove it"
        );
        let error = Scope::new("work\0space", "42").validate().unwrap_err();
        assert!(error.contains("NUL byte in its kind"), "{error}");
    }

    #[test]
    fn parts_over_the_limit_are_refused_with_a_short_message() {
        let error = Scope::new("workspace", "x".repeat(6000))
            .validate()
            .unwrap_err();
        assert!(
            error.starts_with(&format!(
                "scope `workspace:{}... (5960 more bytes)`",
                "x".repeat(40)
            )),
            "{error}"
        );
        assert!(
            error.contains("an id of 6000 bytes, over the limit of 512"),
            "{error}"
        );
        assert!(error.len() < 300, "{error}");
        let just_over = "y".repeat(Scope::MAX_LEN + 1);
        let error = Scope::new(just_over, "1").validate().unwrap_err();
        assert!(error.contains("a kind of 513 bytes"), "{error}");
        // Multi-byte characters count in bytes and are never cut in half.
        let error = Scope::new("k", "é".repeat(300)).validate().unwrap_err();
        assert!(error.contains("id of 600 bytes"), "{error}");
    }
}
