//! Users (dashboard logins), their sessions, and API tokens for scripts; roles.
//!
//! Passwords are stored as argon2id hashes. Session ids and API tokens are 256-bit random
//! values; only their SHA-256 is stored, so a copy of the database opens no door.

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::Argon2;
use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a user or token may do.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
///
/// The check works in a memory buffer (19 MiB with the default parameters) taken from a
/// small pool and given back, rather than one allocated and freed per check: freed buffers
/// of that size stay with the allocator's per-thread arenas, so a storm of wrong passwords
/// checked on many threads grew the process by gigabytes. The pool holds at most as many
/// buffers as checks ever ran at once, which the callers bound.
pub fn verify_password(password: &[u8], hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Ok(params), Some(salt), Some(expected)) =
        (argon2::Params::try_from(&parsed), parsed.salt, parsed.hash)
    else {
        return false;
    };
    let Ok(algorithm) = argon2::Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let Ok(version) = argon2::Version::try_from(parsed.version.unwrap_or(0x13)) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let blocks = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    let mut memory = memory::take(blocks);
    let hashed = argon2.hash_password_into_with_memory(password, salt, &mut out, &mut memory[..]);
    memory::give_back(memory);
    // `Output`'s equality is constant-time.
    hashed.is_ok() && argon2::password_hash::Output::new(&out).is_ok_and(|out| out == expected)
}

/// Password-check memory, reused while checks come, and given back to the system once they
/// stop.
mod memory {
    use std::sync::{Mutex, Once};
    use std::time::{Duration, Instant};

    use argon2::Block;

    /// Buffers kept for reuse; more checks at once than this allocate and free their own.
    const KEEP: usize = 16;
    /// A buffer unused this long is freed: a county's gateway checks passwords when nodes
    /// connect and people log in, not all the time, and four idle buffers are 76 MiB.
    const IDLE: Duration = Duration::from_secs(30);

    static POOL: Mutex<Vec<(Vec<Block>, Instant)>> = Mutex::new(Vec::new());
    static SWEEPER: Once = Once::new();

    pub(super) fn take(blocks: usize) -> Vec<Block> {
        let reused = POOL.lock().ok().and_then(|mut p| {
            let i = p.iter().position(|(b, _)| b.len() == blocks)?;
            Some(p.swap_remove(i).0)
        });
        reused.unwrap_or_else(|| vec![Block::default(); blocks])
    }

    pub(super) fn give_back(buffer: Vec<Block>) {
        if let Ok(mut p) = POOL.lock() {
            if p.len() < KEEP {
                p.push((buffer, Instant::now()));
            }
        }
        // Freed buffers of this size go back to the system: the allocator maps each one on
        // its own (its threshold for that only rises to the size of a buffer freed), so
        // freeing them after a storm does not leave them in per-thread arenas.
        SWEEPER.call_once(|| {
            let _ = std::thread::Builder::new()
                .name("weir-auth-memory".into())
                .spawn(|| loop {
                    std::thread::sleep(IDLE / 3);
                    sweep(Instant::now());
                });
        });
    }

    /// Frees the buffers unused for [`IDLE`] at `now`; how many are left.
    pub(super) fn sweep(now: Instant) -> usize {
        let Ok(mut p) = POOL.lock() else {
            return 0;
        };
        p.retain(|(_, used)| now.duration_since(*used) < IDLE);
        p.len()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn idle_buffers_are_freed_and_busy_ones_kept() {
            give_back(vec![Block::default(); 8]);
            let later = Instant::now() + IDLE + Duration::from_secs(1);
            give_back(vec![Block::default(); 9]);
            // Both are fresh now; at `later` both have been idle too long.
            assert!(sweep(Instant::now()) >= 2);
            assert_eq!(sweep(later), 0);
        }
    }
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
    // A new password ends every session of the old one.
    conn.execute(
        "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE username = ?1)",
        [username],
    )?;
    Ok(())
}

/// A dashboard user as `weir user list` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct User {
    /// Name.
    pub username: String,
    /// Role.
    pub role: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Sessions open now.
    pub sessions: i64,
}

/// Every user, by name.
pub fn users(conn: &Connection) -> rusqlite::Result<Vec<User>> {
    let mut stmt = conn.prepare(
        "SELECT u.username, u.role, u.created_at,
                (SELECT count(*) FROM sessions s WHERE s.user_id = u.id AND s.expires_at >= ?1)
         FROM users u ORDER BY u.username",
    )?;
    let rows = stmt.query_map([super::now()], |r| {
        Ok(User {
            username: r.get(0)?,
            role: r.get(1)?,
            created_at: r.get(2)?,
            sessions: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// Deletes a user and ends its sessions; false if there was none of that name.
pub fn delete_user(conn: &Connection, username: &str) -> rusqlite::Result<bool> {
    let id: Option<i64> = conn
        .query_row(
            "SELECT id FROM users WHERE username = ?1",
            [username],
            |r| r.get(0),
        )
        .optional()?;
    let Some(id) = id else {
        return Ok(false);
    };
    conn.execute("DELETE FROM sessions WHERE user_id = ?1", [id])?;
    conn.execute("DELETE FROM users WHERE id = ?1", [id])?;
    Ok(true)
}

/// Ends every session of `username`; how many there were.
pub fn end_sessions(conn: &Connection, username: &str) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE username = ?1)",
        [username],
    )
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
    let Some((id, hash, role)) = row else {
        verify_unknown(password.as_bytes());
        return Ok(None);
    };
    let valid = verify_password(password.as_bytes(), &hash);
    Ok(Role::parse(&role).filter(|_| valid).map(|role| {
        (
            id,
            Principal {
                name: username.to_owned(),
                role,
            },
        )
    }))
}

/// The work of [`verify_password`] for a name that does not exist (always false), so that the
/// time of a refusal does not tell whether the name exists.
pub fn verify_unknown(password: &[u8]) -> bool {
    verify_password(password, no_such_user_hash());
    false
}

/// A hash of a password nobody has, with the same parameters as every user's: what a login
/// for a name that does not exist is checked against.
fn no_such_user_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password(&new_secret("")))
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

/// An API token as `weir token list` shows it: never the token itself, which is not kept.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Token {
    /// The first 12 hex digits of the token's hash: what `weir token revoke` takes.
    pub id: String,
    /// What it is for.
    pub name: String,
    /// Role.
    pub role: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// Every API token, oldest first.
pub fn tokens(conn: &Connection) -> rusqlite::Result<Vec<Token>> {
    let mut stmt = conn.prepare(
        "SELECT substr(token_hash, 1, 12), name, role, created_at FROM api_tokens
         ORDER BY created_at, token_hash",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Token {
            id: r.get(0)?,
            name: r.get(1)?,
            role: r.get(2)?,
            created_at: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// Why a token could not be revoked.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    /// No token has that id.
    #[error("no API token has the id {0} (weir token list shows them)")]
    NotFound(String),
    /// The id is too short to name one token.
    #[error("give at least 8 hex digits of the token's id, enough to name one token (weir token list shows them)")]
    TooShort,
    /// Database.
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

/// Revokes the API token whose id (see [`tokens`]) starts with `id`; at least 8 digits.
pub fn revoke_token(conn: &Connection, id: &str) -> Result<(), RevokeError> {
    if id.len() < 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RevokeError::TooShort);
    }
    let id = id.to_ascii_lowercase();
    let matching: i64 = conn.query_row(
        "SELECT count(*) FROM api_tokens WHERE substr(token_hash, 1, length(?1)) = ?1",
        [&id],
        |r| r.get(0),
    )?;
    if matching > 1 {
        return Err(RevokeError::TooShort);
    }
    let n = conn.execute(
        "DELETE FROM api_tokens WHERE substr(token_hash, 1, length(?1)) = ?1",
        [&id],
    )?;
    if n == 0 {
        return Err(RevokeError::NotFound(id));
    }
    Ok(())
}

/// Whether any user exists (a fresh install has none).
pub fn has_users(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row("SELECT EXISTS (SELECT 1 FROM users)", [], |r| r.get(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_matches_its_hash_and_nothing_else_does() {
        let hash = hash_password("correct horse");
        assert!(verify_password(b"correct horse", &hash));
        assert!(!verify_password(b"correct hors", &hash));
        assert!(!verify_password(b"correct horse ", &hash));
        assert!(!verify_password(b"correct horse", "not a hash"));
        // Checked again on the reused buffer, the answers hold.
        assert!(verify_password(b"correct horse", &hash));
        assert!(!verify_password(b"", &hash));
    }

    #[test]
    fn a_hash_from_argon2s_own_verifier_agrees() {
        use argon2::password_hash::PasswordVerifier as _;
        let hash = hash_password("s3cret-pass");
        let parsed = PasswordHash::new(&hash).unwrap();
        for p in ["s3cret-pass", "s3cret-pas", "S3cret-pass"] {
            assert_eq!(
                verify_password(p.as_bytes(), &hash),
                Argon2::default()
                    .verify_password(p.as_bytes(), &parsed)
                    .is_ok(),
                "{p}"
            );
        }
    }
}
