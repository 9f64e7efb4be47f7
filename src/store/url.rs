//! Store URLs: which backend a URL is for, told without repeating the URL (it may hold a
//! password).

/// The scheme of `url` (`postgres` in `postgres://..`): a well-formed scheme followed by `//`,
/// or a database scheme written without slashes (`sqlite:x.db`). Text before a colon that could
/// be a user name (`user:password@host`) is not a scheme, so it is never repeated in a message.
pub(crate) fn scheme(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    let known = [
        "sqlite",
        "postgres",
        "postgresql",
        "mysql",
        "mariadb",
        "mssql",
    ]
    .iter()
    .any(|known| scheme.eq_ignore_ascii_case(known));
    (well_formed && (rest.starts_with("//") || known)).then_some(scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_read_but_user_names_are_not_taken_for_one() {
        assert_eq!(scheme("postgres://u:p@h/db"), Some("postgres"));
        assert_eq!(scheme("sqlite:cronlease.db"), Some("sqlite"));
        assert_eq!(scheme("sqlite::memory:"), Some("sqlite"));
        assert_eq!(scheme("MySQL://h/db"), Some("MySQL"));
        assert_eq!(scheme("user:password@host/db"), None);
        assert_eq!(scheme("cronlease.db"), None);
        assert_eq!(scheme(":memory:"), None);
        assert_eq!(scheme("C:\\data\\cronlease.db"), None);
    }
}
