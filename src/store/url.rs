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

/// `url` with its password replaced by `***` (`postgres://user:***@host/db`), also in a
/// `password=` query parameter: safe to show or log.
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest_start + colon + 1..rest_start + at, "***");
            }
        }
    }
    if let Some(query) = out.find('?') {
        let (head, tail) = out.split_at(query + 1);
        let params: Vec<String> = tail
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_owned(),
            })
            .collect();
        out = format!("{head}{}", params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_wherever_a_url_holds_them() {
        assert_eq!(
            redact_url("postgres://u:s3cret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("mysql://root@h/test"), "mysql://root@h/test");
        assert_eq!(
            redact_url("postgres://h/db?user=u&password=s3cret&sslmode=require"),
            "postgres://h/db?user=u&password=***&sslmode=require"
        );
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
        assert_eq!(redact_url("u:p@w@h/db"), "u:p@w@h/db");
    }

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
