"""Drives gitlab-sim with the unmodified python-gitlab library and prints one JSON object.

Run by `third_party_client.rs`, which seeds the simulator and asserts on every value printed
here. Inputs come from the environment (the token never from argv): SIM_URL, SIM_TOKEN,
SIM_PROJECT_ID, SIM_PROJECT_PATH, SIM_PERSONAL_PROJECT_PATH, SIM_MEMBER_ID, SIM_SHA,
SIM_MR_IID, SIM_DEPLOY_KEY, SIM_USER_KEY. Any unexpected failure is an exception: a traceback and a non-zero
exit status.
"""

import datetime
import json
import os

import gitlab
from gitlab.exceptions import GitlabAuthenticationError, GitlabGetError

env = os.environ
url = env["SIM_URL"]
gl = gitlab.Gitlab(url, private_token=env["SIM_TOKEN"], per_page=100)
result = {"python_gitlab_version": gitlab.__version__}

gl.auth()
result["current_user"] = {"id": gl.user.id, "username": gl.user.username}

# Offset pagination: python-gitlab follows the `Link: rel="next"` headers page by page.
offset = gl.projects.list(iterator=True, membership=True, min_access_level=40)
offset_ids = [p.id for p in offset]
result["offset"] = {
    "ids": offset_ids,
    "total": offset.total,
    "total_pages": offset.total_pages,
    "per_page": offset.per_page,
}

# Keyset pagination: only `Link: <...id_after=N>; rel="next"`, no totals.
keyset = gl.projects.list(
    iterator=True,
    pagination="keyset",
    order_by="id",
    sort="asc",
    membership=True,
    min_access_level=40,
)
result["keyset"] = {"ids": [p.id for p in keyset], "total": keyset.total}

project = gl.projects.get(int(env["SIM_PROJECT_ID"]))
by_path = gl.projects.get(env["SIM_PROJECT_PATH"])
personal = gl.projects.get(env["SIM_PERSONAL_PROJECT_PATH"])
result["project"] = {
    "id": project.id,
    "path_with_namespace": project.path_with_namespace,
    "by_path_id": by_path.id,
    "default_branch": by_path.default_branch,
    "personal_namespace_kind": personal.namespace["kind"],
    "personal_path_with_namespace": personal.path_with_namespace,
}

member = project.members_all.get(int(env["SIM_MEMBER_ID"]))
myself = project.members_all.get(gl.user.id)
result["members_all"] = {
    "member": {"id": member.id, "username": member.username, "access_level": member.access_level},
    "myself_access_level": myself.access_level,
}

hook = project.hooks.create(
    {
        "url": "http://127.0.0.1:9/hooks/lablink",
        "push_events": True,
        "merge_requests_events": True,
        "token": "hook-secret",
    }
)
fetched = project.hooks.get(hook.id)
fetched.push_events = False
fetched.save()
updated = project.hooks.get(hook.id)
project.hooks.delete(hook.id)
try:
    project.hooks.get(hook.id)
    hook_after_delete = None
except GitlabGetError as e:
    hook_after_delete = e.response_code
result["hook"] = {
    "created_id": hook.id,
    "created_url": hook.url,
    "created_token_present": hook.token_present,
    "created_merge_requests_events": hook.merge_requests_events,
    "fetched_id": fetched.id,
    "updated_push_events": updated.push_events,
    "updated_token_present": updated.token_present,
    "get_after_delete": hook_after_delete,
}

expires = (datetime.date.today() + datetime.timedelta(days=30)).isoformat()
token = project.access_tokens.create(
    {"name": "lablink", "scopes": ["api"], "access_level": 40, "expires_at": expires}
)
token_value = token.token
listed = [t.id for t in project.access_tokens.list(get_all=True)]
old_id = token.id
token.rotate()
rotated_value = token.token
bot = gitlab.Gitlab(url, private_token=rotated_value)
bot_sees = bot.projects.get(project.id).id
try:
    gitlab.Gitlab(url, private_token=token_value).projects.get(project.id)
    old_token_error = None
except GitlabAuthenticationError as e:
    old_token_error = e.response_code
project.access_tokens.delete(token.id)
after_delete = project.access_tokens.get(token.id)
result["access_token"] = {
    "created_id": old_id,
    "created_prefix": token_value[:6],
    "created_scopes": token.scopes,
    "listed_ids": listed,
    "rotated_id": token.id,
    "rotated_differs": rotated_value != token_value,
    "rotated_token_reads_project": bot_sees,
    "old_token_error": old_token_error,
    "revoked_after_delete": after_delete.revoked,
    "active_after_delete": after_delete.active,
}

deploy_token = project.deploytokens.create({"name": "lablink-deploy", "scopes": ["read_repository"]})
deploy_tokens_listed = [t.id for t in project.deploytokens.list(get_all=True)]
project.deploytokens.delete(deploy_token.id)
result["deploy_token"] = {
    "username": deploy_token.username,
    "scopes": deploy_token.scopes,
    "has_token": bool(deploy_token.token),
    "listed_ids": deploy_tokens_listed,
    "id": deploy_token.id,
    "after_delete_ids": [t.id for t in project.deploytokens.list(get_all=True)],
}

key = project.keys.create({"title": "lablink", "key": env["SIM_DEPLOY_KEY"], "can_push": False})
keys_listed = [k.id for k in project.keys.list(get_all=True)]
project.keys.delete(key.id)
result["deploy_key"] = {
    "id": key.id,
    "fingerprint_sha256": key.fingerprint_sha256,
    "can_push": key.can_push,
    "listed_ids": keys_listed,
    "after_delete_ids": [k.id for k in project.keys.list(get_all=True)],
}

# The simulator has no commits REST endpoint, so the commit is addressed lazily (no GET).
commit = project.commits.get(env["SIM_SHA"], lazy=True)
running = commit.statuses.create(
    {
        "state": "running",
        "ref": "main",
        "name": "lablink/dbt",
        "target_url": "http://127.0.0.1:9/runs/1",
    }
)
succeeded = commit.statuses.create(
    {"state": "success", "ref": "main", "name": "lablink/dbt", "description": "dbt build passed"}
)
statuses = commit.statuses.list(get_all=True)
result["statuses"] = {
    "created": [
        {"id": s.id, "status": s.status, "sha": s.sha, "ref": s.ref, "name": s.name}
        for s in (running, succeeded)
    ],
    "listed": [{"id": s.id, "status": s.status, "name": s.name} for s in statuses],
}

mrs = project.mergerequests.list(state="opened", get_all=True)
mr = project.mergerequests.get(int(env["SIM_MR_IID"]))
note = mr.notes.create({"body": "dbt build passed"})
result["merge_request"] = {
    "listed_iids": [m.iid for m in mrs],
    "iid": mr.iid,
    "sha": mr.sha,
    "source_branch": mr.source_branch,
    "target_branch": mr.target_branch,
    "note_body": note.body,
    "note_author": note.author["username"],
    "note_ids": [n.id for n in mr.notes.list(get_all=True)],
    "note_id": note.id,
}

# The current user's SSH keys and e-mails.
user_key = gl.user.keys.create({"title": "laptop", "key": env["SIM_USER_KEY"]})
listed_user_keys = [k.id for k in gl.user.keys.list(get_all=True)]
gl.user.keys.delete(user_key.id)
result["user"] = {
    "key_id": user_key.id,
    "key_title": user_key.title,
    "listed_key_ids": listed_user_keys,
    "keys_after_delete": [k.id for k in gl.user.keys.list(get_all=True)],
    "emails": [e.email for e in gl.user.emails.list(get_all=True)],
    "commit_email": gl.user.commit_email,
}

# Protected branches, with a wildcard name.
protected = project.protectedbranches.create(
    {"name": "release/*", "push_access_level": 30, "merge_access_level": 40}
)
listed_protected = sorted(p.name for p in project.protectedbranches.list(get_all=True))
fetched_protected = project.protectedbranches.get("release/*")
project.protectedbranches.delete("release/*")
result["protected_branches"] = {
    "name": protected.name,
    "push_level": protected.push_access_levels[0]["access_level"],
    "listed": listed_protected,
    "fetched": fetched_protected.name,
    "after_delete": sorted(p.name for p in project.protectedbranches.list(get_all=True)),
}

# The push rule: create, read, edit, delete.
created_rule = project.pushrules.create({"commit_message_regex": "JIRA-\\d+", "deny_delete_tag": True})
rule = project.pushrules.get()
rule.max_file_size = 10
rule.save()
edited_rule = project.pushrules.get()
project.pushrules.delete()
result["push_rule"] = {
    "created_regex": created_rule.commit_message_regex,
    "deny_delete_tag": rule.deny_delete_tag,
    "edited_max_file_size": edited_rule.max_file_size,
    "edited_regex": edited_rule.commit_message_regex,
}

# Branches, files, tree and compare.
made = project.branches.create({"branch": "py-branch", "ref": "main"})
branch_names = sorted(b.name for b in project.branches.list(get_all=True))
project.branches.delete("py-branch")
main = project.branches.get("main")
orders = project.files.get(file_path="models/orders.sql", ref="main")
compared = project.repository_compare("main", "feature")
result["repository"] = {
    "created_branch": made.name,
    "branches": branch_names,
    "after_delete": sorted(b.name for b in project.branches.list(get_all=True)),
    "main_sha": main.commit["id"],
    "main_protected": main.protected,
    "file": orders.decode().decode(),
    "raw": project.files.raw(file_path="models/orders.sql", ref="main").decode(),
    "tree": sorted(t["path"] for t in project.repository_tree(ref="feature", recursive=True, get_all=True)),
    "compare_commits": [c["id"] for c in compared["commits"]],
    "compare_files": [d["new_path"] for d in compared["diffs"]],
}

# A merge request created, edited and merged through the API.
project.branches.create({"branch": "py-mr", "ref": "feature"})
opened = project.mergerequests.create(
    {"source_branch": "py-mr", "target_branch": "main", "title": "Draft: from python"}
)
draft_at_creation = opened.draft
opened.title = "From python"
opened.description = "Edited by python-gitlab."
opened.save()
edited = project.mergerequests.get(opened.iid)
opened.merge(should_remove_source_branch=True)
merged = project.mergerequests.get(opened.iid)
result["merge_request_api"] = {
    "draft_at_creation": draft_at_creation,
    "edited_title": edited.title,
    "edited_draft": edited.draft,
    "edited_description": edited.description,
    "merged_state": merged.state,
    "source_branch_left": "py-mr" in [b.name for b in project.branches.list(get_all=True)],
}

# A fork into the user's own namespace.
fork = project.forks.create({"namespace_path": gl.user.username, "path": "warehouse-fork"})
result["fork"] = {
    "path_with_namespace": fork.path_with_namespace,
    "forked_from": fork.forked_from_project["id"],
    "listed": [f.id for f in project.forks.list(get_all=True)],
    "id": fork.id,
}

try:
    gl.projects.get(2**31 - 1)
    missing = None
except GitlabGetError as e:
    missing = {"code": e.response_code, "message": e.error_message}
try:
    gitlab.Gitlab(url, private_token="glpat-not-a-real-token").auth()
    bad_token = None
except GitlabAuthenticationError as e:
    bad_token = {"code": e.response_code}
result["errors"] = {"missing_project": missing, "bad_token": bad_token}

print(json.dumps(result))
