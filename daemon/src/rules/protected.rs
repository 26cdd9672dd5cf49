//! Who only root may reset, unlock, import for or remove devices of: the
//! users a non-root administrator must not take over, because a recovery
//! code, a cleared lockout or a new secret for them is a way to root (or to
//! another administrator).
//!
//! Protected are root (uid 0), the members of `admin_group`, and the
//! members of any group in `protected_groups` (by default
//! [`DEFAULT_PROTECTED_GROUPS`]: the groups that are root-equivalent on
//! Debian and other distributions, `sudo`, `wheel`, `docker`, …), as their
//! primary group or a supplementary one. A group the
//! host does not have simply matches nobody. The answer fails closed: a
//! name the system does not know, or whose groups cannot be looked up, is
//! protected.
//!
//! [`DEFAULT_PROTECTED_GROUPS`]: crate::config::DEFAULT_PROTECTED_GROUPS

/// Why a user is protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protected {
    /// uid 0 (root, or a same-uid alias).
    Root,
    /// A member of `admin_group`.
    Administrator,
    /// A member of this group of `protected_groups`.
    Group(String),
    /// The system does not know the name: it cannot be told apart from
    /// a protected user.
    Unknown,
    /// The name service could not give the user's groups (or gave none,
    /// which no real user has: there is always the primary group).
    GroupsUnknown,
}

/// Whether a user is protected, and why: `uid` is the user's uid as the
/// system resolves it (None: unknown), `groups_of` gives their groups
/// (primary and supplementary; asked only for a uid other than 0). The
/// first reason found wins: root, then `admin_group`, then the first group
/// of `protected` (in its order) the user is in.
pub fn protection<E>(
    uid: Option<u32>,
    groups_of: impl FnOnce() -> Result<Vec<String>, E>,
    admin_group: &str,
    protected: &[String],
) -> Option<Protected> {
    match uid {
        None => return Some(Protected::Unknown),
        Some(0) => return Some(Protected::Root),
        Some(_) => {}
    }
    let groups = match groups_of() {
        Ok(g) if !g.is_empty() => g,
        _ => return Some(Protected::GroupsUnknown),
    };
    if !admin_group.is_empty() && groups.iter().any(|g| g == admin_group) {
        return Some(Protected::Administrator);
    }
    protected
        .iter()
        .find(|p| groups.contains(p))
        .map(|p| Protected::Group(p.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_PROTECTED_GROUPS as DEFAULT_GROUPS;

    fn defaults() -> Vec<String> {
        DEFAULT_GROUPS.iter().map(|g| g.to_string()).collect()
    }

    fn of(groups: &[&str]) -> impl FnOnce() -> Result<Vec<String>, ()> {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        move || Ok(groups)
    }

    #[test]
    fn root_and_unknown_names_are_protected_without_asking_for_groups() {
        let never = || -> Result<Vec<String>, ()> { panic!("groups asked") };
        assert_eq!(protection(Some(0), never, "", &[]), Some(Protected::Root));
        assert_eq!(protection(None, never, "", &[]), Some(Protected::Unknown));
    }

    #[test]
    fn a_failed_or_empty_group_look_up_is_protected() {
        let failed = || -> Result<Vec<String>, ()> { Err(()) };
        assert_eq!(
            protection(Some(1000), failed, "", &[]),
            Some(Protected::GroupsUnknown)
        );
        assert_eq!(
            protection(Some(1000), of(&[]), "", &[]),
            Some(Protected::GroupsUnknown)
        );
    }

    #[test]
    fn every_default_group_protects_its_members() {
        for g in DEFAULT_GROUPS {
            assert_eq!(
                protection(Some(1000), of(&["alice", g]), "", &defaults()),
                Some(Protected::Group(g.to_string())),
                "{g}"
            );
        }
        assert_eq!(
            protection(
                Some(1000),
                of(&["alice", "users", "audio"]),
                "",
                &defaults()
            ),
            None
        );
    }

    #[test]
    fn admin_group_first_then_the_first_protected_group_in_order() {
        let protected = vec!["docker".to_string(), "sudo".to_string()];
        assert_eq!(
            protection(
                Some(1000),
                of(&["sudo", "docker", "staff"]),
                "staff",
                &protected
            ),
            Some(Protected::Administrator)
        );
        assert_eq!(
            protection(Some(1000), of(&["sudo", "docker"]), "staff", &protected),
            Some(Protected::Group("docker".into()))
        );
    }

    /// An empty list (an administrator's explicit choice) leaves root,
    /// administrators and the fail-closed cases protected.
    #[test]
    fn an_empty_list_protects_only_root_and_administrators() {
        assert_eq!(protection(Some(1000), of(&["sudo"]), "staff", &[]), None);
        assert_eq!(
            protection(Some(1000), of(&["staff"]), "staff", &[]),
            Some(Protected::Administrator)
        );
        assert_eq!(
            protection(Some(0), of(&["users"]), "", &[]),
            Some(Protected::Root)
        );
    }
}
