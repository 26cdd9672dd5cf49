//! Sealed columns: which they are, the check that the key file is the
//! database's own, and sealing values an older version stored in clear.

use super::*;

/// Every sealed column: (table, column); each table has a `username`
/// column, the user the value is sealed for.
pub(super) const SEALED: [(&str, &str); 17] = [
    ("totp", "secret"),
    ("totp_pending", "secret"),
    ("backup_codes", "selector"),
    ("backup_codes", "hash"),
    ("email", "address"),
    ("email_codes", "address"),
    ("email_codes", "digest"),
    ("devices", "identity"),
    ("devices", "label"),
    ("devices", "address"),
    ("devices", "password_digest"),
    ("ssh_keys", "identity"),
    ("ssh_keys", "label"),
    ("security_keys", "credential"),
    ("security_keys", "public_key"),
    ("security_keys", "aaguid"),
    ("security_keys", "label"),
];

/// The values of one sealed column, with the users they belong to.
pub(super) fn sealed_values(
    db: &Db,
    table: &str,
    column: &str,
    limit: Option<u32>,
) -> db::Result<Vec<(String, Vec<u8>)>> {
    let sql = match limit {
        Some(n) => format!("SELECT username, {column} FROM {table} LIMIT {n}"),
        None => format!("SELECT username, {column} FROM {table}"),
    };
    db.query_map(&sql, params![], |r| Ok((r.get(0)?, r.get(1)?)))
}

/// Replaces one stored value of a sealed column (the value itself finds
/// the row: sealed values differ by their random nonce).
pub(super) fn replace_value(
    db: &Db,
    table: &str,
    column: &str,
    user: &str,
    old: &[u8],
    new: &[u8],
) -> db::Result<u64> {
    db.execute(
        &format!("UPDATE {table} SET {column} = ?3 WHERE username = ?1 AND {column} = ?2"),
        params![user, old, new],
    )
}

/// Opens one sealed value of each column: the key file must be the
/// database's own, or the daemon would refuse every login it serves.
pub(super) fn check_key(db: &Db) -> Result<(), StoreError> {
    for (table, column) in SEALED {
        for (user, value) in sealed_values(db, table, column, Some(1))? {
            if crate::adapters::sealing::is_sealed(&value)
                && db
                    .unseal(&user, &format!("{table}.{column}"), &value)
                    .is_err()
            {
                return Err(StoreError::WrongKey);
            }
        }
    }
    Ok(())
}

/// Seals values an older version stored in clear.
pub(super) fn seal_legacy(db: &Db) -> Result<(), StoreError> {
    for (table, column) in SEALED {
        let name = format!("{table}.{column}");
        for (user, value) in sealed_values(db, table, column, None)? {
            if !crate::adapters::sealing::is_sealed(&value) {
                let sealed = db.seal(&user, &name, &value)?;
                replace_value(db, table, column, &user, &value, &sealed)?;
            }
        }
    }
    Ok(())
}
