//! Users (dashboard logins), their sessions, and API tokens for scripts; roles.
//!
//! Passwords are stored as argon2id hashes. Session ids and API tokens are 256-bit random
//! values; only their SHA-256 is stored, so a copy of the database opens no door.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a user or token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including users, tokens and the terminal registry.
    Admin,
    /// Watches alerts, acknowledges them, dispatches crews.
    Operator,
    /// Installs and fixes nodes; sees terminals and refused messages.
    Field,
    /// Reads history, exports and compliance figures.
    Inspector,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::Field, Role::Inspector];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Field => "field",
            Role::Inspector => "inspector",
        }
    }

    /// Parses a role name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Who made a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// User name, or the token's name.
    pub name: String,
    /// Role.
    pub role: Role,
}

/// An argon2id hash of `password` in PHC string form.
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        // Hashing with default parameters and a fresh salt cannot fail.
        .unwrap_or_default()
}

/// Whether `password` matches `hash`.
pub fn verify_password(password: &[u8], hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password, &h).is_ok())
}

/// A new random secret: 64 hex characters (256 bits), with a prefix that says what it is.
pub fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// A password people can type from a printout: 16 characters without look-alikes.
pub fn new_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXY346789";
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Why a user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// Name taken.
    #[error("user {0} already exists")]
    Exists(String),
    /// Bad name or password.
    #[error("{0}")]
    Invalid(&'static str),
    /// Database.
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

/// Creates a user, or replaces the password and role of an existing one when `replace`.
pub fn put_user(
    conn: &Connection,
    username: &str,
    password: &str,
    role: Role,
    replace: bool,
) -> Result<(), UserError> {
    if username.is_empty() || username.len() > 64 || username.chars().any(char::is_whitespace) {
        return Err(UserError::Invalid(
            "a user name is 1-64 characters without spaces",
        ));
    }
    if password.chars().count() < 8 {
        return Err(UserError::Invalid("a password needs at least 8 characters"));
    }
    let exists: bool = conn
        .query_row(
            "SELECT 1 FROM users WHERE username = ?1",
            [username],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if exists && !replace {
        return Err(UserError::Exists(username.into()));
    }
    conn.execute(
        "INSERT INTO users (username, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role",
        params![username, hash_password(password), role.name(), super::now()],
    )?;
    Ok(())
}

/// Checks a login; returns the user's principal.
pub fn login(
    conn: &Connection,
    username: &str,
    password: &str,
) -> rusqlite::Result<Option<(i64, Principal)>> {
    let row: Option<(i64, String, String)> = conn
        .query_row(
            "SELECT id, password_hash, role FROM users WHERE username = ?1",
            [username],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(row.and_then(|(id, hash, role)| {
        let role = Role::parse(&role)?;
        verify_password(password.as_bytes(), &hash).then(|| {
            (
                id,
                Principal {
                    name: username.to_owned(),
                    role,
                },
            )
        })
    }))
}

/// Opens a session for user `user_id`; returns the session id for the cookie.
pub fn open_session(conn: &Connection, user_id: i64, hours: u32) -> rusqlite::Result<String> {
    let id = new_secret("");
    let now = super::now();
    conn.execute("DELETE FROM sessions WHERE expires_at < ?1", [now])?;
    conn.execute(
        "INSERT INTO sessions (token_hash, user_id, expires_at) VALUES (?1, ?2, ?3)",
        params![digest(&id), user_id, now + i64::from(hours) * 3600],
    )?;
    Ok(id)
}

/// The user of a live session.
pub fn session(conn: &Connection, session_id: &str) -> rusqlite::Result<Option<Principal>> {
    let row: Option<(String, String)> = conn
        .prepare_cached(
            "SELECT u.username, u.role FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = ?1 AND s.expires_at >= ?2",
        )?
        .query_row(params![digest(session_id), super::now()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    Ok(row.and_then(|(name, role)| {
        Some(Principal {
            name,
            role: Role::parse(&role)?,
        })
    }))
}

/// Ends a session.
pub fn close_session(conn: &Connection, session_id: &str) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM sessions WHERE token_hash = ?1",
        [digest(session_id)],
    )?;
    Ok(())
}

/// Creates an API token; returns it (shown once; only its hash is kept).
pub fn create_token(conn: &Connection, name: &str, role: Role) -> rusqlite::Result<String> {
    let token = new_secret("weir_");
    conn.execute(
        "INSERT INTO api_tokens (token_hash, name, role, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![digest(&token), name, role.name(), super::now()],
    )?;
    Ok(token)
}

/// The principal of an API token.
pub fn token(conn: &Connection, token: &str) -> rusqlite::Result<Option<Principal>> {
    let row: Option<(String, String)> = conn
        .prepare_cached("SELECT name, role FROM api_tokens WHERE token_hash = ?1")?
        .query_row([digest(token)], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(row.and_then(|(name, role)| {
        Some(Principal {
            name,
            role: Role::parse(&role)?,
        })
    }))
}

/// Whether any user exists (a fresh install has none).
pub fn has_users(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row("SELECT EXISTS (SELECT 1 FROM users)", [], |r| r.get(0))
}
