//! The mandatory-2FA policy: for everyone or for groups, optionally from a
//! date. Owns the `policy` table (one row).
//!
//! The config file's `[policy]` seeds the table once, when it is empty;
//! after that, `twofactorctl admin policy` is the only way to change it.

use crate::clock::local_date;
use crate::config::PolicyConfig;
use crate::params;
use crate::store::{Db, DbResult, Optional};
use twofactor_proto::types::Policy;

/// Whether the policy applies to one user now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applies {
    No,
    /// It will from this date: remind, let in.
    Announced(String),
    /// It does: a user without a method must enrol.
    Now,
}

/// The stored policy; the config's initial value if none is stored.
pub fn get(conn: &Db, initial: &PolicyConfig) -> DbResult<Policy> {
    let stored = conn
        .query_row(
            "SELECT mandatory, groups, from_date, updated_by, updated_at FROM policy WHERE id = 1",
            params![],
            |r| {
                let groups: String = r.get(1)?;
                Ok(Policy {
                    mandatory: r.get(0)?,
                    groups: split(&groups),
                    from: r.get(2)?,
                    updated_by: r.get(3)?,
                    updated_at: r.get(4)?,
                })
            },
        )
        .optional()?;
    Ok(stored.unwrap_or_else(|| Policy {
        mandatory: initial.mandatory,
        groups: initial.groups.clone(),
        from: initial.from.clone(),
        updated_by: "config".into(),
        updated_at: 0,
    }))
}

pub fn set(conn: &Db, policy: &Policy) -> DbResult<()> {
    conn.execute(
        "INSERT INTO policy(id, mandatory, groups, from_date, updated_by, updated_at)
         VALUES (1, ?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(id) DO UPDATE SET mandatory = excluded.mandatory,
             groups = excluded.groups, from_date = excluded.from_date,
             updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        params![
            policy.mandatory,
            policy.groups.join(","),
            policy.from,
            policy.updated_by,
            policy.updated_at
        ],
    )
    .map(|_| ())
}

fn split(groups: &str) -> Vec<String> {
    groups
        .split(',')
        .filter(|g| !g.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether the policy applies to a user now: `groups_of` gives the user's
/// groups (from the system; asked only for a group-limited policy), the
/// date is the daemon's local one.
///
/// A group-limited policy needs the user's groups; when the name service
/// cannot give them, the answer is that error, never "no groups": callers
/// fail closed (a login is refused, the last method stays).
pub fn applies_to_user<E>(
    groups_of: impl FnOnce() -> Result<Vec<String>, E>,
    policy: &Policy,
    now: i64,
) -> Result<Applies, E> {
    if !policy.mandatory {
        return Ok(Applies::No);
    }
    let groups = if policy.groups.is_empty() {
        Vec::new()
    } else {
        groups_of()?
    };
    Ok(applies(policy, &groups, &local_date(now)))
}

/// Applies `policy` to a user in `user_groups` on local date `today`.
pub fn applies(policy: &Policy, user_groups: &[String], today: &str) -> Applies {
    if !policy.mandatory {
        return Applies::No;
    }
    let member = policy.groups.is_empty() || policy.groups.iter().any(|g| user_groups.contains(g));
    if !member {
        return Applies::No;
    }
    if !policy.from.is_empty() && today < policy.from.as_str() {
        return Applies::Announced(policy.from.clone());
    }
    Applies::Now
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(mandatory: bool, groups: &[&str], from: &str) -> Policy {
        Policy {
            mandatory,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            from: from.into(),
            ..Policy::default()
        }
    }

    #[test]
    fn rules() {
        let g = vec!["alice".to_string(), "staff".to_string()];
        assert_eq!(
            applies(&policy(false, &[], ""), &g, "2026-01-01"),
            Applies::No
        );
        assert_eq!(
            applies(&policy(true, &[], ""), &g, "2026-01-01"),
            Applies::Now
        );
        assert_eq!(
            applies(&policy(true, &["staff"], ""), &g, "2026-01-01"),
            Applies::Now
        );
        assert_eq!(
            applies(&policy(true, &["ops"], ""), &g, "2026-01-01"),
            Applies::No
        );
        assert_eq!(
            applies(&policy(true, &[], "2026-02-01"), &g, "2026-01-31"),
            Applies::Announced("2026-02-01".into())
        );
        assert_eq!(
            applies(&policy(true, &[], "2026-02-01"), &g, "2026-02-01"),
            Applies::Now
        );
    }

    #[test]
    fn stored_wins_over_config() {
        let c = crate::store::testing::connection();
        let initial = PolicyConfig {
            mandatory: true,
            groups: vec!["staff".into()],
            from: String::new(),
        };
        let p = get(&c, &initial).unwrap();
        assert!(p.mandatory);
        assert_eq!(p.updated_by, "config");
        set(
            &c,
            &Policy {
                mandatory: false,
                updated_by: "root".into(),
                updated_at: 5,
                ..p
            },
        )
        .unwrap();
        let p = get(&c, &initial).unwrap();
        assert!(!p.mandatory);
        assert_eq!(p.groups, vec!["staff".to_string()]);
        assert_eq!(p.updated_by, "root");
    }
}
