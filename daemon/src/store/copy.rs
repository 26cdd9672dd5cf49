//! Copying a whole store into another (`twofactord --copy-store-to`): one
//! machine's SQLite file into the PostgreSQL database of a fleet, or back.
//!
//! Sealed values are copied as they are: they are bound to their user and
//! column, not to an engine, so the target opens them with the same key
//! file. The source is read in one transaction and the target written in
//! one, so the copy is whole or nothing; the target must hold nothing yet,
//! and each table's rows are counted on both sides afterwards.

use super::{Db, DbResult, Store, StoreError};
use crate::params;

/// Every table and the columns copied, parents before children (foreign
/// keys). `backup_codes.id` is not copied: the target numbers its rows
/// itself (ids are never kept outside one login's jobs).
pub const TABLES: [(&str, &str); 14] = [
    (
        "accounts",
        "username, created, preferred, last_method, last_login, failures, locked_until, last_host",
    ),
    ("totp", "username, secret, created, last_step"),
    ("totp_pending", "id, username, secret, expires, attempts"),
    ("backup_codes", "username, selector, hash, created, used_at"),
    (
        "policy",
        "id, mandatory, groups, from_date, updated_by, updated_at",
    ),
    (
        "recovery_codes",
        "username, hash, created, expires, created_by, claimed_by, claimed_until",
    ),
    (
        "source_failures",
        "username, source, failures, locked_until, last",
    ),
    ("email", "username, address, created"),
    (
        "email_codes",
        "username, purpose, source, address, digest, expires, attempts",
    ),
    ("email_sends", "username, source, purpose, at"),
    (
        "devices",
        "id, username, identity, label, address, added, last_used, expires, password_digest",
    ),
    (
        "ssh_keys",
        "id, username, identity, label, added, last_used",
    ),
    (
        "security_keys",
        "id, username, credential, public_key, alg, aaguid, label, sign_count, added, last_used, rp_id",
    ),
    ("fleet_hosts", "name, fingerprint, added"),
];

/// Rows per table, in [`TABLES`]' order.
pub type Counts = Vec<(&'static str, u64)>;

fn counts(db: &Db) -> DbResult<Counts> {
    TABLES
        .iter()
        .map(|(table, _)| {
            db.query_row(&format!("SELECT count(*) FROM {table}"), params![], |r| {
                r.get(0)
            })
            .map(|n| (*table, n))
        })
        .collect()
}

/// Copies everything in `from` into `to`, which must be empty. Returns the
/// rows copied per table, counted in the target after the commit.
pub async fn copy(from: &Store, to: &Store) -> Result<Counts, StoreError> {
    let in_target = to.run(counts).await?;
    let busy: Vec<String> = in_target
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(table, n)| format!("{n} rows in {table}"))
        .collect();
    if !busy.is_empty() {
        return Err(StoreError::Failed(format!(
            "the target store is not empty ({}); refusing to copy over it",
            busy.join(", ")
        )));
    }
    let (source, expected) = from
        .run(|db| {
            let mut tables = Vec::with_capacity(TABLES.len());
            for (table, columns) in TABLES {
                let rows =
                    db.query_map(&format!("SELECT {columns} FROM {table}"), params![], |r| {
                        Ok(r.values().to_vec())
                    })?;
                tables.push(rows);
            }
            Ok((tables, counts(db)?))
        })
        .await?;
    to.run(move |db| {
        for ((table, columns), rows) in TABLES.iter().zip(&source) {
            let n = columns.split(',').count();
            let placeholders: Vec<String> = (1..=n).map(|i| format!("?{i}")).collect();
            let sql = format!(
                "INSERT INTO {table}({columns}) VALUES ({})",
                placeholders.join(", ")
            );
            for row in rows {
                db.execute(&sql, row.as_slice())?;
            }
        }
        Ok(())
    })
    .await?;
    let copied = to.run(counts).await?;
    if copied != expected {
        return Err(StoreError::Failed(format!(
            "the copy does not add up: source {expected:?}, target {copied:?}"
        )));
    }
    Ok(copied)
}
