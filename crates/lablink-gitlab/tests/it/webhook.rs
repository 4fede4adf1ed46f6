//! Every real payload in `shared/gitlab/fixtures/webhook.*.json` parses to the right event, and
//! no input makes the parser panic.

use lablink_gitlab::webhook::{
    Event, MergeRequestAction, MergeRequestEvent, Parsed, PushEvent, parse,
};
use proptest::prelude::*;
use serde_json::Value;

use crate::server::fixture;

const MR: Option<&str> = Some("Merge Request Hook");

fn merge_request(name: &str) -> MergeRequestEvent {
    match parse(MR, fixture(name).as_bytes()) {
        Parsed::Event(Event::MergeRequest(mr)) => *mr,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn open_events() {
    let mr = merge_request("webhook.merge_request.open.gitlab-com-capture.json");
    assert_eq!(mr.action, MergeRequestAction::Open);
    assert_eq!(mr.iid, 3);
    assert_eq!(mr.head_sha, "2f7670508b771e7e77839402be8b34b13787aba8");
    assert_eq!(mr.oldrev, None);
    assert!(!mr.draft);
    assert_eq!(mr.state, "opened");
    assert_eq!(mr.project_id, 72081820);
    assert_eq!(
        (mr.source_project_id, mr.target_project_id),
        (72081820, 72081820)
    );
    assert_eq!(
        mr.url,
        "https://gitlab.com/demoaccount2-commits-group/test_ci_tmp/-/merge_requests/3"
    );
    assert_eq!(mr.updated_at_ms, Some(1_754_430_507_000));
    assert!(mr.has_new_code());

    let docs = merge_request("webhook.merge_request.open.docs-example.json");
    assert_eq!(docs.action, MergeRequestAction::Open);
    assert_eq!(docs.head_sha, "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
    assert_eq!(docs.project_id, 1);
    assert_eq!(docs.target_project_id, 14);
    assert!(docs.updated_at_ms.is_some(), "RFC 3339 dates are read too");
    assert!(!docs.draft);
}

#[test]
fn update_with_and_without_oldrev() {
    let pushed =
        merge_request("webhook.merge_request.update_new_commits_oldrev.gitlab-com-capture.json");
    assert_eq!(pushed.action, MergeRequestAction::Update);
    assert_eq!(
        pushed.oldrev.as_deref(),
        Some("8b641937b7340066d882b9d8a8cc5b0573a207de")
    );
    assert_eq!(pushed.head_sha, "c136499ec574e1034b24c5d306de9acda3005367");
    assert!(pushed.has_new_code());

    let self_managed =
        merge_request("webhook.merge_request.update_oldrev.self-managed-capture.json");
    assert_eq!(
        self_managed.oldrev.as_deref(),
        Some("6ef047571374c96a2bf13c361efd1fb008b0063e")
    );
    assert_eq!(
        self_managed.head_sha,
        "0ab96a10266b95b4b533dcfd98738015fbe70889"
    );
    assert!(self_managed.has_new_code());

    let edited = merge_request(
        "webhook.merge_request.update_title_description_no_oldrev.gitlab-com-capture.json",
    );
    assert_eq!(edited.action, MergeRequestAction::Update);
    assert_eq!(edited.oldrev, None);
    assert_eq!(edited.changes_draft, None);
    assert!(!edited.has_new_code());
}

#[test]
fn close_reopen_merge_approved() {
    let closed = merge_request("webhook.merge_request.close.gitlab-com-capture.json");
    assert_eq!(closed.action, MergeRequestAction::Close);
    assert_eq!(closed.state, "closed");
    assert!(!closed.has_new_code());

    let reopened = merge_request("webhook.merge_request.reopen.gitlab-com-capture.json");
    assert_eq!(reopened.action, MergeRequestAction::Reopen);
    assert_eq!(reopened.iid, 1);
    assert!(reopened.has_new_code());

    let merged = merge_request("webhook.merge_request.merge.gitlab-com-capture.json");
    assert_eq!(merged.action, MergeRequestAction::Merge);
    assert_eq!(merged.state, "merged");

    let approved = merge_request("webhook.merge_request.approved.gitlab-com-capture.json");
    assert_eq!(approved.action, MergeRequestAction::Approved);
    assert!(!approved.has_new_code());
    assert!(
        !approved.draft,
        "work_in_progress false is read when draft is absent"
    );
}

#[test]
fn draft_changes_are_reported() {
    let mut body: Value = serde_json::from_str(&fixture(
        "webhook.merge_request.update_title_description_no_oldrev.gitlab-com-capture.json",
    ))
    .unwrap();
    body["changes"]["draft"] = serde_json::json!({"previous": true, "current": false});
    body["object_attributes"]["draft"] = Value::Bool(false);
    match parse(MR, body.to_string().as_bytes()) {
        Parsed::Event(Event::MergeRequest(mr)) => {
            assert_eq!(mr.changes_draft, Some((true, false)));
            assert!(mr.became_ready());
        }
        other => panic!("{other:?}"),
    }
}

fn push(header: &str, name: &str) -> Event {
    match parse(Some(header), fixture(name).as_bytes()) {
        Parsed::Event(event) => event,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn push_events() {
    let Event::Push(p) = push("Push Hook", "webhook.push.gitlab-com-capture.json") else {
        panic!("not a push");
    };
    assert_eq!(p.ref_name, "refs/heads/main");
    assert_eq!(p.branch(), Some("main"));
    assert_eq!(
        p.checkout_sha.as_deref(),
        Some("16862e368d8ab812e48833b741dad720d6e2cb7f")
    );
    assert_eq!(p.after, "16862e368d8ab812e48833b741dad720d6e2cb7f");
    assert_eq!(p.project_id, 2);
    assert_eq!(p.default_branch.as_deref(), Some("develop"));
    assert!(!p.is_default_branch_update());
    assert!(!p.is_deletion());

    let Event::Push(docs) = push("Push Hook", "webhook.push.docs-example.json") else {
        panic!("not a push");
    };
    assert_eq!(docs.project_id, 15);
    assert!(
        docs.is_default_branch_update(),
        "master is the default branch"
    );

    let deleted = PushEvent {
        after: "0000000000000000000000000000000000000000".to_owned(),
        ..docs
    };
    assert!(deleted.is_deletion() && !deleted.is_default_branch_update());
}

#[test]
fn tag_push_events() {
    let Event::TagPush(tag) = push(
        "Tag Push Hook",
        "webhook.tag_push.create.gitlab-com-capture.json",
    ) else {
        panic!("not a tag push");
    };
    assert_eq!(tag.ref_name, "refs/tags/v22");
    assert_eq!(tag.before, "0000000000000000000000000000000000000000");
    assert_eq!(tag.branch(), None);
    let Event::TagPush(docs) = push("Tag Push Hook", "webhook.tag_push.docs-example.json") else {
        panic!("not a tag push");
    };
    assert_eq!(docs.ref_name, "refs/tags/v1.0.0");
    assert_eq!(docs.project_id, 1);
}

#[test]
fn note_event_on_a_merge_request() {
    let Event::Note(note) = push("Note Hook", "webhook.note.merge_request.docs-example.json")
    else {
        panic!("not a note");
    };
    assert_eq!(note.note_id, 1244);
    assert_eq!(note.noteable_type, "MergeRequest");
    assert_eq!(note.project_id, 5);
    assert_eq!(note.merge_request_iid, Some(1));
    assert_eq!(note.action.as_deref(), Some("create"));
    assert!(!note.system);
}

#[test]
fn every_webhook_fixture_parses_to_an_event() {
    let dir = format!(
        "{}/../../../shared/gitlab/fixtures",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !(name.starts_with("webhook.") && name.ends_with(".json")) {
            continue;
        }
        seen += 1;
        assert!(
            matches!(parse(None, fixture(&name).as_bytes()), Parsed::Event(_)),
            "{name}"
        );
    }
    assert_eq!(seen, 14);
}

/// Keys that steer the parser into its interesting paths.
const KEYS: &[&str] = &[
    "object_kind",
    "object_attributes",
    "action",
    "iid",
    "id",
    "last_commit",
    "oldrev",
    "draft",
    "work_in_progress",
    "state",
    "project",
    "project_id",
    "source_project_id",
    "target_project_id",
    "changes",
    "previous",
    "current",
    "ref",
    "before",
    "after",
    "checkout_sha",
    "updated_at",
    "merge_request",
    "noteable_type",
    "source_branch",
    "target_branch",
    "default_branch",
    "title",
    "url",
];
const WORDS: &[&str] = &[
    "merge_request",
    "push",
    "tag_push",
    "note",
    "open",
    "update",
    "2025-08-05 21:48:27 UTC",
    "2025-08-05T21:48:27Z",
    "refs/heads/main",
    "0000000000000000000000000000000000000000",
    "",
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(WORDS).prop_map(Value::from),
        ".*".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![prop::sample::select(KEYS).prop_map(str::to_owned), ".*"],
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_header() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        prop::sample::select(
            &[
                "Merge Request Hook",
                "Push Hook",
                "Tag Push Hook",
                "Note Hook",
                "System Hook",
            ][..]
        )
        .prop_map(|h| Some(h.to_owned())),
        ".*".prop_map(Some),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(header in arb_header(), body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(header.as_deref(), &body);
    }

    #[test]
    fn arbitrary_json_never_panics(header in arb_header(), value in arb_json(), kind in prop::sample::select(WORDS)) {
        let _ = parse(header.as_deref(), value.to_string().as_bytes());
        // Also with a known object_kind at the top, so the per-event readers see odd shapes.
        let mut object = match value {
            Value::Object(map) => map,
            other => [("object_attributes".to_owned(), other)].into_iter().collect(),
        };
        object.insert("object_kind".to_owned(), Value::from(kind));
        let _ = parse(header.as_deref(), Value::Object(object).to_string().as_bytes());
    }

    #[test]
    fn fixtures_with_a_field_removed_never_panic(index in 0usize..14, drop_key in prop::sample::select(KEYS)) {
        let dir = format!("{}/../../../shared/gitlab/fixtures", env!("CARGO_MANIFEST_DIR"));
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("webhook."))
            .collect();
        names.sort();
        let mut value: Value = serde_json::from_str(&fixture(&names[index])).unwrap();
        remove_everywhere(&mut value, drop_key);
        match parse(None, value.to_string().as_bytes()) {
            Parsed::Event(_) => {}
            Parsed::Ignored { reason } => prop_assert!(!reason.is_empty()),
        }
    }
}

fn remove_everywhere(value: &mut Value, key: &str) {
    match value {
        Value::Object(map) => {
            map.remove(key);
            map.values_mut().for_each(|v| remove_everywhere(v, key));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| remove_everywhere(v, key)),
        _ => {}
    }
}
