//! Projects listing (filters, offset and keyset pagination), lookup by path, groups, and
//! effective membership through nested groups.

use std::collections::HashSet;

use gitlab_sim::state::{Namespace, Visibility, access};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestSim, expect, header, json};

fn link_rel(link: &str, rel: &str) -> Option<String> {
    link.split(", ")
        .find(|part| part.ends_with(&format!("rel=\"{rel}\"")))
        .map(|part| {
            part.split(">;")
                .next()
                .unwrap_or_default()
                .trim_start_matches('<')
                .to_owned()
        })
}

async fn seeded(t: &TestSim, n: usize) -> crate::common::TestUser {
    let user = t.user("lister");
    let group = t.group("many", None);
    t.handle()
        .add_group_member(group, user.id, access::DEVELOPER)
        .expect("member");
    for i in 0..n {
        t.project(&format!("p{i:02}"), Namespace::Group(group))
            .await;
    }
    user
}

#[tokio::test]
async fn offset_pagination_headers() {
    let t = TestSim::start().await;
    let user = seeded(&t, 25).await;
    let r = t
        .get(
            "/projects?membership=true&per_page=10&page=2&order_by=id&sort=asc",
            &user.token,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "x-total").as_deref(), Some("25"));
    assert_eq!(header(&r, "x-total-pages").as_deref(), Some("3"));
    assert_eq!(header(&r, "x-page").as_deref(), Some("2"));
    assert_eq!(header(&r, "x-per-page").as_deref(), Some("10"));
    assert_eq!(header(&r, "x-next-page").as_deref(), Some("3"));
    assert_eq!(header(&r, "x-prev-page").as_deref(), Some("1"));
    let link = header(&r, "link").expect("link");
    for rel in ["prev", "next", "first", "last"] {
        assert!(link_rel(&link, rel).is_some(), "{rel} in {link}");
    }
    let next = link_rel(&link, "next").expect("next");
    assert!(
        next.contains("page=3") && next.contains("membership=true"),
        "{next}"
    );
    let page2 = json(r).await;
    assert_eq!(page2.as_array().expect("array").len(), 10);
    let last = t
        .http
        .get(link_rel(&link, "last").expect("last"))
        .header("PRIVATE-TOKEN", &user.token)
        .send()
        .await
        .expect("last");
    assert_eq!(header(&last, "x-next-page").as_deref(), Some(""));
    assert_eq!(json(last).await.as_array().expect("array").len(), 5);
    let capped = t
        .get("/projects?membership=true&per_page=500", &user.token)
        .await;
    assert_eq!(header(&capped, "x-per-page").as_deref(), Some("100"));
}

#[tokio::test]
async fn keyset_pagination_follows_link_until_absent() {
    let t = TestSim::start().await;
    let user = seeded(&t, 23).await;
    let mut url = t.api(
        "/projects?membership=true&pagination=keyset&order_by=id&sort=asc&per_page=10&simple=true",
    );
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let r = t
            .http
            .get(&url)
            .header("PRIVATE-TOKEN", &user.token)
            .send()
            .await
            .expect("page");
        assert_eq!(r.status(), StatusCode::OK);
        assert!(header(&r, "x-total").is_none() && header(&r, "x-total-pages").is_none());
        let next = header(&r, "link").and_then(|l| link_rel(&l, "next"));
        let page = json(r).await;
        ids.extend(
            page.as_array()
                .expect("array")
                .iter()
                .map(|p| p["id"].as_u64().expect("id")),
        );
        pages += 1;
        match next {
            Some(n) => {
                assert!(n.contains("id_after="), "{n}");
                url = n;
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(ids.len(), 23);
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let desc = t
        .get(
            "/projects?membership=true&pagination=keyset&order_by=id&sort=desc&per_page=10",
            &user.token,
        )
        .await;
    let next = header(&desc, "link")
        .and_then(|l| link_rel(&l, "next"))
        .expect("next");
    let first_page = json(desc).await;
    let desc_ids: Vec<u64> = first_page
        .as_array()
        .expect("array")
        .iter()
        .map(|p| p["id"].as_u64().expect("id"))
        .collect();
    assert!(desc_ids.windows(2).all(|w| w[0] > w[1]));
    assert!(
        next.contains(&format!("id_before={}", desc_ids[9])),
        "{next}"
    );
    let unsupported = t
        .get("/projects?pagination=keyset&order_by=name", &user.token)
        .await;
    assert_eq!(unsupported.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn membership_and_min_access_level_follow_nested_groups() {
    let t = TestSim::start().await;
    let user = t.user("maintainer");
    let top = t.group("top", None);
    let sub = t.group("sub", Some(top));
    let leaf = t.group("leaf", Some(sub));
    t.handle()
        .add_group_member(top, user.id, access::MAINTAINER)
        .expect("member");
    let deep = t.project("deep", Namespace::Group(leaf)).await;
    let other_group = t.group("other", None);
    t.handle()
        .add_group_member(other_group, user.id, access::DEVELOPER)
        .expect("member");
    let dev_only = t.project("devonly", Namespace::Group(other_group)).await;
    let personal = t.project("mine", Namespace::User(user.id)).await;
    let stranger = t.user("stranger");
    let foreign = t.project("foreign", Namespace::User(stranger.id)).await;
    let archived = t.project("old", Namespace::Group(top)).await;
    t.handle()
        .lock()
        .projects
        .get_mut(&archived.id)
        .expect("p")
        .archived = true;

    let ids = |v: Value| {
        v.as_array()
            .expect("array")
            .iter()
            .map(|p| p["id"].as_u64().expect("id"))
            .collect::<HashSet<_>>()
    };
    let maint = ids(json(
        t.get(
            "/projects?membership=true&min_access_level=40&archived=false",
            &user.token,
        )
        .await,
    )
    .await);
    assert_eq!(maint, HashSet::from([deep.id, personal.id]));
    let all = ids(json(t.get("/projects?membership=true", &user.token).await).await);
    assert_eq!(
        all,
        HashSet::from([deep.id, dev_only.id, personal.id, archived.id])
    );
    assert!(!all.contains(&foreign.id));
    let archived_only = ids(json(
        t.get("/projects?membership=true&archived=true", &user.token)
            .await,
    )
    .await);
    assert_eq!(archived_only, HashSet::from([archived.id]));
    let search = ids(json(
        t.get("/projects?membership=true&search=DEE", &user.token)
            .await,
    )
    .await);
    assert_eq!(search, HashSet::from([deep.id]));
    let bad = t.get("/projects?min_access_level=41", &user.token).await;
    assert_eq!(
        expect(bad, StatusCode::BAD_REQUEST).await["error"],
        "min_access_level does not have a valid value"
    );

    // By URL-encoded path, with effective permissions.
    let by_path = expect(
        t.get("/projects/top%2Fsub%2Fleaf%2Fdeep", &user.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(by_path["id"], deep.id);
    assert_eq!(by_path["path_with_namespace"], "top/sub/leaf/deep");
    assert_eq!(by_path["namespace"]["full_path"], "top/sub/leaf");
    assert_eq!(by_path["namespace"]["kind"], "group");
    assert_eq!(by_path["permissions"]["group_access"]["access_level"], 40);
    assert_eq!(by_path["permissions"]["project_access"], Value::Null);
    let personal_json = expect(
        t.get(&format!("/projects/{}", personal.id), &user.token)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(personal_json["namespace"]["kind"], "user");
    assert_eq!(personal_json["default_branch"], "main");

    // Effective membership: inherited from `top` through two subgroups; direct-only is 404.
    let m = expect(
        t.get(
            &format!("/projects/{}/members/all/{}", deep.id, user.id),
            &user.token,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(m["access_level"], 40);
    assert_eq!(m["username"], "maintainer");
    let direct = t
        .get(
            &format!("/projects/{}/members/{}", deep.id, user.id),
            &user.token,
        )
        .await;
    assert_eq!(
        expect(direct, StatusCode::NOT_FOUND).await,
        json!({"message": "404 Member Not Found"})
    );
    let none = t
        .get(
            &format!("/projects/{}/members/all/{}", deep.id, stranger.id),
            &user.token,
        )
        .await;
    assert_eq!(
        expect(none, StatusCode::NOT_FOUND).await,
        json!({"message": "404 Member Not Found"})
    );
    // A higher direct membership wins over the inherited one.
    t.handle()
        .add_project_member(deep.id, user.id, access::OWNER)
        .expect("member");
    let m = expect(
        t.get(
            &format!("/projects/{}/members/all/{}", deep.id, user.id),
            &user.token,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(m["access_level"], 50);
}

#[tokio::test]
async fn groups_list_and_show() {
    let t = TestSim::start().await;
    let user = t.user("grouper");
    let top = t.group("acme", None);
    let sub = t.group("data", Some(top));
    let _unrelated = t.group("unrelated", None);
    t.handle()
        .add_group_member(top, user.id, access::OWNER)
        .expect("member");
    let list = t.get("/groups", &user.token).await;
    assert_eq!(header(&list, "x-total").as_deref(), Some("2"));
    let names: Vec<String> = json(list)
        .await
        .as_array()
        .expect("a")
        .iter()
        .map(|g| g["full_path"].as_str().expect("p").to_owned())
        .collect();
    assert_eq!(names, ["acme", "acme/data"]);
    let g = expect(
        t.get("/groups/acme%2Fdata", &user.token).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(g["id"], sub);
    assert_eq!(g["parent_id"], top);
    let outsider = t.user("outsider");
    let hidden = t.get(&format!("/groups/{top}"), &outsider.token).await;
    assert_eq!(
        expect(hidden, StatusCode::NOT_FOUND).await,
        json!({"message": "404 Group Not Found"})
    );
    let public = t
        .project_with("pub", Namespace::Group(top), Visibility::Public)
        .await;
    let anon = t
        .http
        .get(t.api(&format!("/projects/{}", public.id)))
        .send()
        .await
        .expect("r");
    assert_eq!(expect(anon, StatusCode::OK).await["visibility"], "public");
}

#[tokio::test]
async fn groups_min_access_level_is_effective() {
    let t = TestSim::start().await;
    let user = t.user("gm");
    let top = t.group("top", None);
    let sub = t.group("sub", Some(top));
    let other = t.group("other", None);
    t.handle()
        .add_group_member(top, user.id, access::MAINTAINER)
        .expect("member");
    t.handle()
        .add_group_member(other, user.id, access::REPORTER)
        .expect("member");
    let ids = |v: Value| {
        v.as_array()
            .expect("array")
            .iter()
            .map(|g| g["id"].as_u64().expect("id"))
            .collect::<HashSet<_>>()
    };
    let maint = ids(json(t.get("/groups?min_access_level=40", &user.token).await).await);
    assert_eq!(maint, HashSet::from([top, sub]));
    let all = ids(json(t.get("/groups", &user.token).await).await);
    assert_eq!(all, HashSet::from([top, sub, other]));
}
