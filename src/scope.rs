//! Scopes: what a job runs for.
//!
//! - [`Scope`]: a `(kind, id)` pair such as `("workspace", "42")`; [`Scope::global`] for unscoped jobs.
//! - [`Scopes`]: where a job's scopes come from: a fixed list or an async provider called every tick.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;

/// What a job runs for: one execution row exists per `(job, scope, plan_time)`.
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

    /// A scope of `kind` and `id`.
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        Scope {
            kind: kind.into(),
            id: id.into(),
        }
    }

    /// Checks that the scope can be stored the same way on every backend: kind and id not
    /// empty, without NUL bytes, each at most [`Scope::MAX_LEN`] bytes.
    pub fn validate(&self) -> Result<(), String> {
        for (field, value) in [("kind", &self.kind), ("id", &self.id)] {
            if value.is_empty() {
                return Err(format!("scope {field} must not be empty"));
            }
            if value.contains('\0') {
                return Err(format!("scope {field} must not contain a NUL byte"));
            }
            if value.len() > Self::MAX_LEN {
                return Err(format!(
                    "scope {field} is {} bytes long, more than the {} allowed",
                    value.len(),
                    Self::MAX_LEN
                ));
            }
        }
        Ok(())
    }

    /// The longest scope kind or id, in bytes.
    pub const MAX_LEN: usize = 512;

    /// The scope of unscoped jobs: `("global", "global")`.
    pub fn global() -> Self {
        Scope::new(Self::GLOBAL, Self::GLOBAL)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.id)
    }
}

/// The error type a scope provider may return.
pub type ProviderError = Box<dyn std::error::Error + Send + Sync>;

type ProviderFn =
    dyn Fn() -> BoxFuture<'static, Result<Vec<Scope>, ProviderError>> + Send + Sync + 'static;

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
        Scopes::Provider(Arc::new(move || Box::pin(f())))
    }

    /// Resolves the current scopes.
    pub(crate) async fn resolve(&self) -> Result<Arc<[Scope]>, ProviderError> {
        match self {
            Scopes::Static(list) => Ok(list.clone()),
            Scopes::Provider(f) => Ok(f().await?.into()),
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
