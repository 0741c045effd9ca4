//! Password policy and the secret wrapper that keeps passwords out of logs.

use std::fmt;

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 128;

/// A plaintext password. Its `Debug` prints a mask, so it cannot leak through a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    /// Wraps a password as received, without checking the policy (for sign-in).
    pub fn new(text: impl Into<String>) -> Self {
        Password(text.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks the policy for a new password of the user with `email`: 8..128
    /// characters, not the email, not a common password.
    pub fn check_policy(&self, email: &str) -> Result<(), String> {
        let chars = self.0.chars().count();
        if chars < MIN_PASSWORD_CHARS {
            return Err(format!("must be at least {MIN_PASSWORD_CHARS} characters"));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(format!("must be at most {MAX_PASSWORD_CHARS} characters"));
        }
        if !email.is_empty() && self.0.trim().eq_ignore_ascii_case(email.trim()) {
            return Err("must not be the email address".into());
        }
        if is_common(&self.0) {
            return Err("is a commonly used password; choose another".into());
        }
        Ok(())
    }
}

/// Whether the whole password is one entry of zxcvbn's list of common passwords
/// (also reversed or with l33t substitutions).
fn is_common(password: &str) -> bool {
    use zxcvbn::matching::patterns::MatchPattern;
    let entropy = zxcvbn::zxcvbn(password, &[]);
    let length = password.chars().count();
    entropy.sequence().iter().any(|m| {
        m.i == 0
            && m.j + 1 == length
            && matches!(&m.pattern, MatchPattern::Dictionary(d)
                // zxcvbn does not export `DictionaryType`; its default is `Passwords`.
                if d.dictionary_name == Default::default())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_bounded_in_characters() {
        assert!(Password::new("sh0rt!").check_policy("").is_err());
        assert!(Password::new("ünïcödé-okay-9").check_policy("").is_ok());
        assert!(Password::new("x".repeat(129)).check_policy("").is_err());
        assert!(Password::new("Qz7!".repeat(32)).check_policy("").is_ok());
    }

    #[test]
    fn the_email_is_not_a_password() {
        assert!(
            Password::new("Ana@Example.com")
                .check_policy("ana@example.com")
                .is_err()
        );
    }

    #[test]
    fn common_passwords_are_refused() {
        for common in [
            "password",
            "password1",
            "12345678",
            "iloveyou",
            "qwertyuiop",
            "P@ssw0rd",
        ] {
            assert!(Password::new(common).check_policy("").is_err(), "{common}");
        }
        assert!(
            Password::new("correct horse battery staple 42")
                .check_policy("")
                .is_ok()
        );
    }

    #[test]
    fn debug_never_shows_the_password() {
        assert_eq!(
            format!("{:?}", Password::new("hunter22hunter")),
            "Password(***)"
        );
    }
}
