//! Effective access: direct membership, inheritance through (nested) groups, personal namespaces.

use super::{Id, Member, Namespace, Project, State, Visibility, access};

impl State {
    /// Highest group membership of `user_id` on `group_id` or any of its ancestors.
    pub fn group_membership(&self, user_id: Id, group_id: Id) -> Option<&Member> {
        let mut best: Option<&Member> = None;
        let mut current = self.groups.get(&group_id);
        while let Some(group) = current {
            if let Some(m) = self
                .group_members
                .get(&group.id)
                .and_then(|ms| ms.get(&user_id))
                && best.is_none_or(|b| m.access_level > b.access_level)
            {
                best = Some(m);
            }
            current = group.parent_id.and_then(|p| self.groups.get(&p));
        }
        best
    }

    pub fn group_access(&self, user_id: Id, group_id: Id) -> u8 {
        self.group_membership(user_id, group_id)
            .map_or(0, |m| m.access_level)
    }

    /// The membership that gives `user_id` its highest access to the project, direct or inherited.
    /// Owners of a personal namespace are Owners of its projects.
    pub fn effective_project_membership(&self, user_id: Id, project: &Project) -> Option<Member> {
        let direct = self
            .project_members
            .get(&project.id)
            .and_then(|ms| ms.get(&user_id));
        let inherited = match project.namespace {
            Namespace::Group(group_id) => self.group_membership(user_id, group_id).cloned(),
            Namespace::User(owner) if owner == user_id => self.users.get(&owner).map(|u| Member {
                user_id,
                access_level: access::OWNER,
                created_at: u.created_at,
                created_by: None,
                expires_at: None,
            }),
            Namespace::User(_) => None,
        };
        match (direct, inherited) {
            (Some(d), Some(i)) if i.access_level > d.access_level => Some(i),
            (Some(d), _) => Some(d.clone()),
            (None, i) => i,
        }
    }

    pub fn project_access(&self, user_id: Id, project: &Project) -> u8 {
        self.effective_project_membership(user_id, project)
            .map_or(0, |m| m.access_level)
    }

    /// Whether the user (or an anonymous caller for `None`) may see the project at all.
    pub fn can_read_project(&self, user_id: Option<Id>, project: &Project) -> bool {
        let member =
            || user_id.is_some_and(|uid| self.project_access(uid, project) >= access::GUEST);
        // Bots (project access tokens) see only what they are members of.
        match (project.visibility, user_id) {
            (Visibility::Public, _) => true,
            (_, None) => false,
            (Visibility::Internal, Some(uid)) => {
                self.users.get(&uid).is_some_and(|u| !u.bot) || member()
            }
            (Visibility::Private, Some(uid)) => {
                self.users.get(&uid).is_some_and(|u| u.is_admin) || member()
            }
        }
    }

    pub fn can_read_group(&self, user_id: Option<Id>, group_id: Id) -> bool {
        let Some(group) = self.groups.get(&group_id) else {
            return false;
        };
        match (group.visibility, user_id) {
            (Visibility::Public, _) => true,
            (_, None) => false,
            (Visibility::Internal, Some(_)) => true,
            (Visibility::Private, Some(uid)) => {
                self.users.get(&uid).is_some_and(|u| u.is_admin)
                    || self.group_access(uid, group_id) > 0
                    || self.has_access_below(uid, group_id)
            }
        }
    }

    /// Members of a subgroup or project inside a private group can see the group (GitLab shows
    /// ancestors of what you can access).
    fn has_access_below(&self, user_id: Id, group_id: Id) -> bool {
        let descends = |mut gid: Option<Id>| {
            while let Some(id) = gid {
                if id == group_id {
                    return true;
                }
                gid = self.groups.get(&id).and_then(|g| g.parent_id);
            }
            false
        };
        self.group_members
            .iter()
            .any(|(gid, ms)| ms.contains_key(&user_id) && descends(Some(*gid)))
            || self.project_members.iter().any(|(pid, ms)| {
                ms.contains_key(&user_id)
                    && self.projects.get(pid).is_some_and(|p| match p.namespace {
                        Namespace::Group(g) => descends(Some(g)),
                        Namespace::User(_) => false,
                    })
            })
    }
}
