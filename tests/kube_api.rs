//! Tests of the fake Kubernetes API server (tests/support/kube_api.rs) through the real kube
//! client and kube-runtime: they show the fake behaves like the API server where a controller
//! depends on it.

mod support;

use std::convert::Infallible;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::events::v1::Event as KubeEvent;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use kube::core::{GroupVersionKind, Status};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{finalizer, watcher};
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use support::kube_api::{FakeApiServer, Method};
use vpc_mirror_controller::policy::{MirrorPolicy, MirrorPolicyStatus};

const POLICIES: &str = "/apis/vpcmirror.dev/v1alpha1/mirrorpolicies";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";
const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/default/leases/vpc-mirror-controller";
const CLEANUP_FINALIZER: &str = "vpcmirror.dev/cleanup";
const WAIT: Duration = Duration::from_secs(10);

fn policy(name: &str) -> MirrorPolicy {
    serde_json::from_value(json!({
        "apiVersion": "vpcmirror.dev/v1alpha1",
        "kind": "MirrorPolicy",
        "metadata": { "name": name },
        "spec": {
            "target": { "id": "tmt-0a1b2c3d4e5f60718" },
            "filter": { "id": "tmf-0a1b2c3d4e5f60718" },
            "selector": { "tags": { "matchLabels": { "env": "prod" } } },
        },
    }))
    .expect("the test policy deserializes")
}

fn labelled_policy(name: &str, team: &str) -> MirrorPolicy {
    let mut policy = policy(name);
    policy.labels_mut().insert("team".into(), team.into());
    policy
}

fn policy_path(name: &str) -> String {
    format!("{POLICIES}/{name}")
}

/// Returns the `Status` inside a `kube::Error::Api`, and panics on any other error.
fn api_status(error: kube::Error) -> Status {
    match error {
        kube::Error::Api(status) => *status,
        other => panic!("expected kube::Error::Api, got {other:?}"),
    }
}

/// Polls `condition` every 10 ms until it is true, and panics after 10 seconds.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn names(policies: &[MirrorPolicy]) -> Vec<String> {
    policies.iter().map(ResourceExt::name_any).collect()
}

fn event_types<K>(events: &[WatchEvent<K>]) -> Vec<&'static str> {
    events
        .iter()
        .map(|event| match event {
            WatchEvent::Added(_) => "ADDED",
            WatchEvent::Modified(_) => "MODIFIED",
            WatchEvent::Deleted(_) => "DELETED",
            WatchEvent::Bookmark(_) => "BOOKMARK",
            WatchEvent::Error(_) => "ERROR",
        })
        .collect()
}

/// Collects a watch that ends by its `timeoutSeconds`.
async fn collect_watch(api: &Api<MirrorPolicy>, params: &WatchParams, version: &str) -> Vec<WatchEvent<MirrorPolicy>> {
    let stream = api.watch(params, version).await.expect("the watch starts");
    tokio::time::timeout(WAIT, stream.try_collect())
        .await
        .expect("the watch ends by its timeout")
        .expect("every watch event decodes")
}

// ---- create, get, list ----

#[tokio::test]
async fn create_sets_server_fields() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    let mut requested = policy("prod-web");
    requested.status = Some(MirrorPolicyStatus { observed_generation: Some(7), ..MirrorPolicyStatus::default() });

    let created = api.create(&PostParams::default(), &requested).await.unwrap();

    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(created.metadata.resource_version.as_deref(), Some("2"));
    assert_eq!(created.metadata.uid.as_deref(), Some("00000000-0000-4000-8000-000000000001"));
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.spec, requested.spec);
    assert_eq!(created.status, None, "create drops status when the status subresource is enabled");
    assert_eq!(fake.requests_to(Method::POST, POLICIES)[0].status, Some(201));
}

#[tokio::test]
async fn get_and_list_return_created_policy() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    let created = api.create(&PostParams::default(), &policy("prod-web")).await.unwrap();

    let fetched = api.get("prod-web").await.unwrap();
    let listed = api.list(&ListParams::default()).await.unwrap();

    assert_eq!(fetched.metadata, created.metadata);
    assert_eq!(fetched.spec, created.spec);
    assert_eq!(listed.types.kind, "MirrorPolicyList");
    assert_eq!(listed.metadata.resource_version.as_deref(), Some("2"));
    assert_eq!(names(&listed.items), ["prod-web"]);
    assert_eq!(fake.object::<MirrorPolicy>(None, "prod-web").unwrap()["metadata"]["generation"], 1);
}

#[tokio::test]
async fn duplicate_create_is_already_exists() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    api.create(&PostParams::default(), &policy("prod-web")).await.unwrap();

    let status = api_status(api.create(&PostParams::default(), &policy("prod-web")).await.unwrap_err());

    assert_eq!(status.code, 409);
    assert_eq!(status.reason, "AlreadyExists");
    assert!(status.is_already_exists());
    assert_eq!(status.message, "mirrorpolicies.vpcmirror.dev \"prod-web\" already exists");
}

#[tokio::test]
async fn missing_policy_is_not_found() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());

    let status = api_status(api.get("absent").await.unwrap_err());

    assert_eq!(status.code, 404);
    assert_eq!(status.reason, "NotFound");
    assert_eq!(status.message, "mirrorpolicies.vpcmirror.dev \"absent\" not found");
    assert!(api.get_opt("absent").await.unwrap().is_none());
}

#[tokio::test]
async fn unregistered_resource_is_not_found() {
    let fake = FakeApiServer::new();
    let widgets = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("example.com", "v1", "Widget"), "widgets");
    let api: Api<DynamicObject> = Api::all_with(fake.client(), &widgets);

    let status = api_status(api.list(&ListParams::default()).await.unwrap_err());

    assert_eq!(status.code, 404);
    assert_eq!(status.message, "the server could not find the requested resource");
}

#[tokio::test]
async fn dry_run_create_stores_nothing() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    let params = PostParams { dry_run: true, ..PostParams::default() };

    let created = api.create(&params, &policy("prod-web")).await.unwrap();

    assert_eq!(created.name_any(), "prod-web");
    assert!(fake.object::<MirrorPolicy>(None, "prod-web").is_none());
    assert_eq!(fake.resource_version(), 1);
}

#[tokio::test]
async fn list_pages_with_limit_and_continue() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    for name in ["c", "a", "b"] {
        api.create(&PostParams::default(), &policy(name)).await.unwrap();
    }

    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    let token = first.metadata.continue_.clone().expect("a continue token");
    let second = api.list(&ListParams::default().limit(2).continue_token(&token)).await.unwrap();

    assert_eq!(names(&first.items), ["a", "b"]);
    assert_eq!(first.metadata.remaining_item_count, Some(1));
    assert_eq!(names(&second.items), ["c"]);
    assert_eq!(second.metadata.continue_, None);
    assert_eq!(second.metadata.resource_version, first.metadata.resource_version);
}

#[tokio::test]
async fn label_selector_filters_list() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    api.create(&PostParams::default(), &labelled_policy("web", "web")).await.unwrap();
    api.create(&PostParams::default(), &labelled_policy("api", "api")).await.unwrap();
    api.create(&PostParams::default(), &policy("unlabelled")).await.unwrap();

    let cases = [
        ("team=web", vec!["web"]),
        ("team!=web", vec!["api", "unlabelled"]),
        ("team in (web,api)", vec!["api", "web"]),
        ("team notin (web)", vec!["api", "unlabelled"]),
        ("team", vec!["api", "web"]),
        ("!team", vec!["unlabelled"]),
        ("team=web,team=api", vec![]),
    ];
    for (selector, expected) in cases {
        let listed = api.list(&ListParams::default().labels(selector)).await.unwrap();
        assert_eq!(names(&listed.items), expected, "labelSelector {selector}");
    }
}

#[tokio::test]
async fn inserted_object_keeps_status() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    let mut seeded = policy("seeded");
    seeded.status = Some(MirrorPolicyStatus { observed_generation: Some(1), ..MirrorPolicyStatus::default() });

    let inserted = fake.insert(&seeded);
    let fetched = api.get("seeded").await.unwrap();

    assert_eq!(inserted["metadata"]["resourceVersion"], "2");
    assert_eq!(fetched.status, seeded.status);
    assert_eq!(fake.objects::<MirrorPolicy>(None).len(), 1);
    assert!(fake.remove::<MirrorPolicy>(None, "seeded").is_some());
    assert!(api.get_opt("seeded").await.unwrap().is_none());
}

// ---- patches ----

#[tokio::test]
async fn merge_patch_of_spec_increments_generation() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    api.create(&PostParams::default(), &policy("prod-web")).await.unwrap();

    let patch = json!({ "spec": { "prune": false } });
    let patched = api.patch("prod-web", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();

    assert!(!patched.spec.prune);
    assert_eq!(patched.spec.target.id, "tmt-0a1b2c3d4e5f60718");
    assert_eq!(patched.metadata.generation, Some(2));
    assert_eq!(patched.metadata.resource_version.as_deref(), Some("3"));
    let request = &fake.requests_to(Method::PATCH, &policy_path("prod-web"))[0];
    assert_eq!(request.content_type.as_deref(), Some("application/merge-patch+json"));
    assert_eq!(request.body, patch);
}

#[tokio::test]
async fn metadata_patch_keeps_generation() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    api.create(&PostParams::default(), &policy("prod-web")).await.unwrap();

    let patch = json!({ "metadata": { "labels": { "team": "web" } } });
    let patched = api.patch("prod-web", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();

    assert_eq!(patched.labels().get("team").map(String::as_str), Some("web"));
    assert_eq!(patched.metadata.generation, Some(1));
    assert_eq!(patched.metadata.resource_version.as_deref(), Some("3"));
}

#[tokio::test]
async fn server_side_apply_creates_then_merges() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    let params = PatchParams::apply("vpc-mirror-controller").force();
    let mut applied = serde_json::to_value(policy("prod-web")).unwrap();

    let created = api.patch("prod-web", &params, &Patch::Apply(&applied)).await.unwrap();
    applied["spec"]["prune"] = json!(false);
    let updated = api.patch("prod-web", &params, &Patch::Apply(&applied)).await.unwrap();

    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.spec.prune);
    assert_eq!(updated.metadata.generation, Some(2));
    assert!(!updated.spec.prune);
    assert_eq!(updated.metadata.uid, created.metadata.uid);
    let requests = fake.requests_to(Method::PATCH, &policy_path("prod-web"));
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].status, Some(201));
    assert_eq!(requests[1].status, Some(200));
    assert_eq!(requests[1].content_type.as_deref(), Some("application/apply-patch+yaml"));
    assert_eq!(requests[1].query_param("fieldManager"), Some("vpc-mirror-controller"));
    assert_eq!(requests[1].query_param("force"), Some("true"));
    assert_eq!(requests[1].body, applied);
}

#[tokio::test]
async fn status_patch_changes_status_only() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    api.create(&PostParams::default(), &policy("prod-web")).await.unwrap();

    let patch = json!({
        "status": { "observedGeneration": 1, "targetId": "tmt-0a1b2c3d4e5f60718" },
        "spec": { "prune": false },
    });
    let patched = api.patch_status("prod-web", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();

    let status = patched.status.clone().expect("a status");
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.target_id.as_deref(), Some("tmt-0a1b2c3d4e5f60718"));
    assert!(patched.spec.prune, "a status write ignores spec");
    assert_eq!(patched.metadata.generation, Some(1));
    let requests = fake.requests_to(Method::PATCH, &format!("{}/status", policy_path("prod-web")));
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].body, patch);
}

#[tokio::test]
async fn main_resource_write_ignores_status() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    api.create(&PostParams::default(), &policy("prod-web")).await.unwrap();
    let status_patch = json!({ "status": { "targetId": "tmt-0a1b2c3d4e5f60718" } });
    let before = api.patch_status("prod-web", &PatchParams::default(), &Patch::Merge(&status_patch)).await.unwrap();

    let patch = json!({ "status": { "targetId": "tmt-ffffffffffffffff0" } });
    let after = api.patch("prod-web", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();

    assert_eq!(after.status, before.status);
    assert_eq!(
        after.metadata.resource_version, before.metadata.resource_version,
        "a write that changes nothing keeps the resourceVersion"
    );
}

#[tokio::test]
async fn identical_status_patch_keeps_resource_version() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    api.create(&PostParams::default(), &policy("prod-web")).await.unwrap();
    let patch = json!({ "status": { "observedGeneration": 1 } });
    let first = api.patch_status("prod-web", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();

    let second = api.patch_status("prod-web", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();

    assert_eq!(second.metadata.resource_version, first.metadata.resource_version);
    assert_eq!(fake.resource_version(), 3);
}

#[tokio::test]
async fn failed_json_patch_test_is_invalid() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    api.create(&PostParams::default(), &policy("prod-web")).await.unwrap();
    let patch: json_patch::Patch = serde_json::from_value(json!([
        { "op": "test", "path": "/spec/prune", "value": false },
        { "op": "replace", "path": "/spec/prune", "value": true },
    ]))
    .unwrap();

    let status =
        api_status(api.patch("prod-web", &PatchParams::default(), &Patch::<()>::Json(patch)).await.unwrap_err());

    assert_eq!(status.code, 422);
    assert_eq!(status.reason, "Invalid");
    assert_eq!(fake.resource_version(), 2, "a failed patch writes nothing");
}

#[tokio::test]
async fn strategic_merge_patch_of_custom_resource_is_unsupported() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    api.create(&PostParams::default(), &policy("prod-web")).await.unwrap();

    let patch = json!({ "spec": { "prune": false } });
    let status =
        api_status(api.patch("prod-web", &PatchParams::default(), &Patch::Strategic(&patch)).await.unwrap_err());

    assert_eq!(status.code, 415);
    assert_eq!(status.reason, "UnsupportedMediaType");
}

#[tokio::test]
async fn strategic_merge_patch_of_lease_merges() {
    let fake = FakeApiServer::new();
    let leases: Api<Lease> = Api::namespaced(fake.client(), "default");
    leases.create(&PostParams::default(), &lease("pod-a")).await.unwrap();

    let patch = json!({ "spec": { "holderIdentity": "pod-b" } });
    let patched =
        leases.patch("vpc-mirror-controller", &PatchParams::default(), &Patch::Strategic(&patch)).await.unwrap();

    let spec = patched.spec.expect("a lease spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("pod-b"));
    assert_eq!(spec.lease_duration_seconds, Some(15));
}

// ---- replace and optimistic concurrency ----

#[tokio::test]
async fn replace_with_stale_version_conflicts() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    let created = api.create(&PostParams::default(), &policy("prod-web")).await.unwrap();
    let patch = json!({ "metadata": { "labels": { "team": "web" } } });
    api.patch("prod-web", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();

    let mut stale = created.clone();
    stale.spec.prune = false;
    let status = api_status(api.replace("prod-web", &PostParams::default(), &stale).await.unwrap_err());

    assert_eq!(status.code, 409);
    assert_eq!(status.reason, "Conflict");
    assert!(status.is_conflict());
    assert_eq!(
        status.message,
        "Operation cannot be fulfilled on mirrorpolicies.vpcmirror.dev \"prod-web\": the object has been modified; please apply your changes to the latest version and try again"
    );
    assert!(api.get("prod-web").await.unwrap().spec.prune, "the rejected replace wrote nothing");
}

#[tokio::test]
async fn replace_with_current_version_succeeds() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    api.create(&PostParams::default(), &policy("prod-web")).await.unwrap();

    let mut current = api.get("prod-web").await.unwrap();
    current.spec.prune = false;
    let replaced = api.replace("prod-web", &PostParams::default(), &current).await.unwrap();

    assert!(!replaced.spec.prune);
    assert_eq!(replaced.metadata.generation, Some(2));
    assert_eq!(replaced.metadata.resource_version.as_deref(), Some("3"));
}

#[tokio::test]
async fn replace_of_custom_resource_needs_resource_version() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    api.create(&PostParams::default(), &policy("prod-web")).await.unwrap();

    let status = api_status(api.replace("prod-web", &PostParams::default(), &policy("prod-web")).await.unwrap_err());

    assert_eq!(status.code, 422);
    assert_eq!(status.reason, "Invalid");
}

// ---- delete and finalizers ----

#[tokio::test]
async fn delete_without_finalizers_removes_policy() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    let created = api.create(&PostParams::default(), &policy("prod-web")).await.unwrap();

    let result = api.delete("prod-web", &DeleteParams::default()).await.unwrap();

    let status = result.right().expect("a Status for an immediate delete");
    assert!(status.is_success());
    let details = status.details.expect("status details");
    assert_eq!(details.name, "prod-web");
    assert_eq!(details.uid, created.metadata.uid.unwrap());
    assert!(api.get_opt("prod-web").await.unwrap().is_none());
}

#[tokio::test]
async fn finalizer_helper_holds_delete_until_cleanup() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    api.create(&PostParams::default(), &policy("prod-web")).await.unwrap();
    let start_version = fake.resource_version().to_string();
    let cleanups = Arc::new(Mutex::new(0));

    // kube-runtime's helper adds the finalizer with a JSON patch: test null, then add.
    let created = Arc::new(api.get("prod-web").await.unwrap());
    finalizer(&api, CLEANUP_FINALIZER, created, |_| async { Ok::<_, Infallible>(Action::await_change()) })
        .await
        .unwrap();
    let guarded = api.get("prod-web").await.unwrap();
    assert_eq!(guarded.finalizers(), [CLEANUP_FINALIZER]);

    // The delete only marks the policy, once.
    let deleting = api.delete("prod-web", &DeleteParams::default()).await.unwrap();
    let deleting = deleting.left().expect("the object while its finalizer is present");
    let deletion_timestamp = deleting.metadata.deletion_timestamp.clone().expect("a deletionTimestamp");
    let again = api.delete("prod-web", &DeleteParams::default()).await.unwrap().left().unwrap();
    assert_eq!(again.metadata.deletion_timestamp, Some(deletion_timestamp));
    assert_eq!(again.metadata.resource_version, deleting.metadata.resource_version);

    // Cleanup removes the finalizer with a JSON patch: test the index, then remove.
    let counter = cleanups.clone();
    finalizer(&api, CLEANUP_FINALIZER, Arc::new(deleting), |event| async move {
        assert!(matches!(event, finalizer::Event::Cleanup(_)));
        *counter.lock().unwrap() += 1;
        Ok::<_, Infallible>(Action::await_change())
    })
    .await
    .unwrap();

    assert_eq!(*cleanups.lock().unwrap(), 1);
    assert!(api.get_opt("prod-web").await.unwrap().is_none());
    let events = collect_watch(&api, &WatchParams::default().timeout(1).disable_bookmarks(), &start_version).await;
    assert_eq!(event_types(&events), ["MODIFIED", "MODIFIED", "DELETED"]);
}

#[tokio::test]
async fn finalizer_cannot_be_added_while_deleting() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    let mut guarded = policy("prod-web");
    guarded.finalizers_mut().push(CLEANUP_FINALIZER.into());
    api.create(&PostParams::default(), &guarded).await.unwrap();
    api.delete("prod-web", &DeleteParams::default()).await.unwrap();

    let patch = json!({ "metadata": { "finalizers": [CLEANUP_FINALIZER, "example.com/other"] } });
    let status = api_status(api.patch("prod-web", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap_err());

    assert_eq!(status.code, 422);
    assert_eq!(status.reason, "Invalid");
}

#[tokio::test]
async fn delete_precondition_on_uid_conflicts() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    api.create(&PostParams::default(), &policy("prod-web")).await.unwrap();
    let params = DeleteParams {
        preconditions: Some(kube::api::Preconditions { uid: Some("another-uid".into()), resource_version: None }),
        ..DeleteParams::default()
    };

    let status = api_status(api.delete("prod-web", &params).await.unwrap_err());

    assert_eq!(status.code, 409);
    assert!(api.get_opt("prod-web").await.unwrap().is_some());
}

// ---- watches ----

#[tokio::test]
async fn watch_resumes_after_version_and_times_out() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    api.create(&PostParams::default(), &policy("prod-web")).await.unwrap();
    let status_patch = json!({ "status": { "observedGeneration": 1 } });
    api.patch_status("prod-web", &PatchParams::default(), &Patch::Merge(&status_patch)).await.unwrap();
    api.delete("prod-web", &DeleteParams::default()).await.unwrap();

    let events = collect_watch(&api, &WatchParams::default().timeout(1), "1").await;

    assert_eq!(event_types(&events), ["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]);
    let WatchEvent::Bookmark(bookmark) = &events[3] else { unreachable!() };
    assert_eq!(bookmark.metadata.resource_version, "4");
    let WatchEvent::Deleted(deleted) = &events[2] else { unreachable!() };
    assert_eq!(deleted.metadata.resource_version.as_deref(), Some("4"));
}

#[tokio::test]
async fn watch_from_zero_starts_with_current_objects() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    api.create(&PostParams::default(), &policy("a")).await.unwrap();
    api.create(&PostParams::default(), &policy("b")).await.unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();

    let events = collect_watch(&api, &WatchParams::default().timeout(1).disable_bookmarks(), "0").await;

    assert_eq!(event_types(&events), ["ADDED"]);
    let WatchEvent::Added(added) = &events[0] else { unreachable!() };
    assert_eq!(added.name_any(), "b");
}

#[tokio::test]
async fn watch_from_compacted_version_is_gone() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    api.create(&PostParams::default(), &policy("prod-web")).await.unwrap();
    fake.compact_history();

    let events = collect_watch(&api, &WatchParams::default().timeout(1), "1").await;

    assert_eq!(event_types(&events), ["ERROR"]);
    let WatchEvent::Error(status) = &events[0] else { unreachable!() };
    assert_eq!(status.code, 410);
    assert_eq!(status.reason, "Expired");
}

#[tokio::test]
async fn labelled_watch_sees_object_leave_selector() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    api.create(&PostParams::default(), &labelled_policy("prod-web", "web")).await.unwrap();
    let patch = json!({ "metadata": { "labels": { "team": "api" } } });
    api.patch("prod-web", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();

    let params = WatchParams::default().timeout(1).disable_bookmarks().labels("team=web");
    let events = collect_watch(&api, &params, "1").await;

    assert_eq!(event_types(&events), ["ADDED", "DELETED"]);
}

#[tokio::test]
async fn watcher_sees_new_policy_and_status_change() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn({
        let api = api.clone();
        async move {
            let mut events = pin!(watcher(api, watcher::Config::default()));
            while let Some(event) = events.next().await {
                if sender.send(event).is_err() {
                    break;
                }
            }
        }
    });
    let mut next_event = async || {
        tokio::time::timeout(WAIT, receiver.recv())
            .await
            .expect("a watcher event in time")
            .expect("the watcher task is running")
            .expect("no watcher error")
    };

    assert!(matches!(next_event().await, watcher::Event::Init));
    assert!(matches!(next_event().await, watcher::Event::InitDone));
    fake.wait_for_open_watch(POLICIES).await;
    api.create(&PostParams::default(), &policy("prod-web")).await.unwrap();
    let watcher::Event::Apply(added) = next_event().await else { panic!("expected Apply for the new policy") };
    let status_patch = json!({ "status": { "observedGeneration": 1 } });
    api.patch_status("prod-web", &PatchParams::default(), &Patch::Merge(&status_patch)).await.unwrap();
    let watcher::Event::Apply(modified) = next_event().await else { panic!("expected Apply for the status change") };

    assert_eq!(added.name_any(), "prod-web");
    assert_eq!(added.status, None);
    assert_eq!(modified.status.and_then(|status| status.observed_generation), Some(1));
    task.abort();
}

// ---- controller ----

/// The generation of every policy the reconcile function saw, in order.
#[derive(Default)]
struct ReconcileLog {
    generations: Mutex<Vec<Option<i64>>>,
}

impl ReconcileLog {
    fn generations(&self) -> Vec<Option<i64>> {
        self.generations.lock().unwrap().clone()
    }
}

async fn record_generation(policy: Arc<MirrorPolicy>, log: Arc<ReconcileLog>) -> Result<Action, Infallible> {
    log.generations.lock().unwrap().push(policy.metadata.generation);
    Ok(Action::await_change())
}

fn never_requeue(_: Arc<MirrorPolicy>, error: &Infallible, _: Arc<ReconcileLog>) -> Action {
    match *error {}
}

#[tokio::test]
async fn controller_reconciles_new_policy_and_spec_change() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    let log = Arc::new(ReconcileLog::default());
    let controller = Controller::new(api.clone(), watcher::Config::default())
        .run(record_generation, never_requeue, log.clone())
        .for_each(|_| futures::future::ready(()));
    let task = tokio::spawn(controller);

    fake.wait_for_open_watch(POLICIES).await;
    api.create(&PostParams::default(), &policy("prod-web")).await.unwrap();
    eventually("the reconcile of the new policy", || log.generations().len() == 1).await;
    let patch = json!({ "spec": { "prune": false } });
    api.patch("prod-web", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    eventually("the reconcile of the spec change", || log.generations().len() == 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    assert_eq!(log.generations(), [Some(1), Some(2)]);
    let requests = fake.requests_to(Method::GET, POLICIES);
    assert_eq!(requests.len(), 2, "one list and one watch: {requests:#?}");
    let query = |index: usize| -> Vec<(&str, &str)> {
        requests[index].query.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect()
    };
    assert_eq!(query(0), [("limit", "500")]);
    assert_eq!(
        query(1),
        [("watch", "true"), ("timeoutSeconds", "290"), ("allowWatchBookmarks", "true"), ("resourceVersion", "1")]
    );
    task.abort();
}

// ---- leases ----

fn lease(holder: &str) -> Lease {
    Lease {
        metadata: ObjectMeta { name: Some("vpc-mirror-controller".into()), ..ObjectMeta::default() },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        }),
    }
}

#[tokio::test]
async fn lease_round_trip_with_optimistic_concurrency() {
    let fake = FakeApiServer::new();
    let leases: Api<Lease> = Api::namespaced(fake.client(), "default");

    let created = leases.create(&PostParams::default(), &lease("pod-a")).await.unwrap();
    let fetched = leases.get("vpc-mirror-controller").await.unwrap();
    let mut renewed = fetched.clone();
    renewed.spec.as_mut().unwrap().holder_identity = Some("pod-b".into());
    let replaced = leases.replace("vpc-mirror-controller", &PostParams::default(), &renewed).await.unwrap();
    let stale = leases.replace("vpc-mirror-controller", &PostParams::default(), &renewed).await;

    assert_eq!(created.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(fetched.metadata, created.metadata);
    assert_eq!(replaced.spec.unwrap().holder_identity.as_deref(), Some("pod-b"));
    assert_ne!(replaced.metadata.resource_version, fetched.metadata.resource_version);
    let status = api_status(stale.unwrap_err());
    assert_eq!(status.code, 409);
    assert_eq!(status.reason, "Conflict");
    assert_eq!(
        status.message,
        "Operation cannot be fulfilled on leases.coordination.k8s.io \"vpc-mirror-controller\": the object has been modified; please apply your changes to the latest version and try again"
    );
    assert_eq!(fake.request_count(Method::PUT, LEASE), 2);
    assert_eq!(fake.objects::<Lease>(Some("default")).len(), 1);
}

// ---- events ----

#[tokio::test]
async fn recorder_publishes_event_for_policy() {
    let fake = FakeApiServer::new();
    let client = fake.client();
    let policies: Api<MirrorPolicy> = Api::all(client.clone());
    let created = policies.create(&PostParams::default(), &policy("prod-web")).await.unwrap();
    let reporter = Reporter { controller: "vpc-mirror-controller".into(), instance: Some("pod-a".into()) };
    let recorder = Recorder::new(client.clone(), reporter);
    let event = Event {
        type_: EventType::Normal,
        reason: "Reconciled".into(),
        note: Some("3 of 3 network interfaces mirrored".into()),
        action: "Reconcile".into(),
        secondary: None,
    };

    recorder.publish(&event, &created.object_ref(&())).await.unwrap();

    let events: Api<KubeEvent> = Api::namespaced(client, "default");
    let listed = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    let stored = &listed.items[0];
    assert_eq!(stored.reason.as_deref(), Some("Reconciled"));
    assert_eq!(stored.action.as_deref(), Some("Reconcile"));
    assert_eq!(stored.note.as_deref(), Some("3 of 3 network interfaces mirrored"));
    assert_eq!(stored.type_.as_deref(), Some("Normal"));
    assert_eq!(stored.reporting_controller.as_deref(), Some("vpc-mirror-controller"));
    assert_eq!(stored.reporting_instance.as_deref(), Some("pod-a"));
    let regarding = stored.regarding.clone().expect("a regarding reference");
    assert_eq!(regarding.kind.as_deref(), Some("MirrorPolicy"));
    assert_eq!(regarding.api_version.as_deref(), Some("vpcmirror.dev/v1alpha1"));
    assert_eq!(regarding.name.as_deref(), Some("prod-web"));
    assert_eq!(regarding.uid, created.metadata.uid);
    assert_eq!(fake.request_count(Method::POST, EVENTS), 1);
}

#[tokio::test]
async fn repeated_event_is_patched_into_series() {
    let fake = FakeApiServer::new();
    let client = fake.client();
    let policies: Api<MirrorPolicy> = Api::all(client.clone());
    let created = policies.create(&PostParams::default(), &policy("prod-web")).await.unwrap();
    let recorder = Recorder::new(client.clone(), "vpc-mirror-controller".into());
    let event = Event {
        type_: EventType::Warning,
        reason: "TargetNotFound".into(),
        note: None,
        action: "Reconcile".into(),
        secondary: None,
    };

    recorder.publish(&event, &created.object_ref(&())).await.unwrap();
    recorder.publish(&event, &created.object_ref(&())).await.unwrap();

    let events: Api<KubeEvent> = Api::namespaced(client, "default");
    let listed = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    let name = listed.items[0].name_any();
    assert_eq!(listed.items[0].series.as_ref().map(|series| series.count), Some(2));
    assert_eq!(fake.request_count(Method::POST, EVENTS), 1);
    let patches = fake.requests_to(Method::PATCH, &format!("{EVENTS}/{name}"));
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0].content_type.as_deref(), Some("application/merge-patch+json"));
    assert_eq!(patches[0].body["series"]["count"], 2);
}

// ---- failures ----

#[tokio::test]
async fn injected_failure_hits_next_matching_request_once() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    api.create(&PostParams::default(), &policy("prod-web")).await.unwrap();
    fake.fail_next(Method::PATCH, &policy_path("prod-web"), 500);

    let patch = json!({ "status": { "observedGeneration": 1 } });
    let list_result = api.list(&ListParams::default()).await;
    let failed = api.patch_status("prod-web", &PatchParams::default(), &Patch::Merge(&patch)).await;
    let retried = api.patch_status("prod-web", &PatchParams::default(), &Patch::Merge(&patch)).await;

    assert!(list_result.is_ok(), "a request of another method is not affected");
    let status = api_status(failed.unwrap_err());
    assert_eq!(status.code, 500);
    assert_eq!(status.reason, "InternalError");
    assert_eq!(retried.unwrap().status.unwrap().observed_generation, Some(1));
    let status_path = format!("{}/status", policy_path("prod-web"));
    let statuses: Vec<Option<u16>> =
        fake.requests_to(Method::PATCH, &status_path).iter().map(|request| request.status).collect();
    assert_eq!(statuses, [Some(500), Some(200)]);
}

#[tokio::test]
async fn unavailable_server_refuses_requests() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());

    fake.set_available(false);
    let refused = api.list(&ListParams::default()).await;
    fake.set_available(true);
    let served = api.list(&ListParams::default()).await;

    assert!(matches!(refused, Err(kube::Error::Service(_))), "{refused:?}");
    assert!(served.is_ok());
    let statuses: Vec<Option<u16>> = fake.requests().iter().map(|request| request.status).collect();
    assert_eq!(statuses, [None, Some(200)]);
}

#[tokio::test]
async fn unavailable_server_ends_open_watches() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    let mut events = api.watch(&WatchParams::default(), "0").await.unwrap().boxed();
    fake.wait_for_open_watch(POLICIES).await;

    fake.set_available(false);
    let end = tokio::time::timeout(WAIT, events.next()).await.expect("the watch ends in time");

    assert!(end.is_none(), "{end:?}");
    drop(events);
    assert_eq!(fake.open_watch_count(POLICIES), 0);
}

#[tokio::test]
async fn recorded_request_keeps_raw_body_value() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());

    api.create(&PostParams::default(), &policy("prod-web")).await.unwrap();

    let request = &fake.requests_to(Method::POST, POLICIES)[0];
    assert_eq!(request.content_type.as_deref(), Some("application/json"));
    assert_eq!(request.body, serde_json::to_value(policy("prod-web")).unwrap());
    assert_eq!(request.body["metadata"], json!({ "name": "prod-web" }));
    assert!(matches!(request.body["status"], Value::Null));
}

#[tokio::test]
async fn server_side_apply_removes_fields_manager_dropped() {
    let fake = FakeApiServer::new();
    let api: Api<MirrorPolicy> = Api::all(fake.client());
    api.create(&PostParams::default(), &policy("prod-web")).await.unwrap();
    let params = PatchParams::apply("vpc-mirror-controller").force();
    let status = |counts: Value| {
        json!({
            "apiVersion": "vpcmirror.dev/v1alpha1",
            "kind": "MirrorPolicy",
            "status": { "observedGeneration": 1, "coverage": {
                "selected": 3, "eligible": 3, "mirrored": 1, "percent": "33%", "unmirroredByReason": counts,
            } },
        })
    };
    let first = status(json!({ "SessionQuotaReached": 1, "Throttled": 1 }));
    api.patch_status("prod-web", &params, &Patch::Apply(&first)).await.unwrap();
    let other_manager = json!({ "status": { "targetId": "tmt-0a1b2c3d4e5f60718" } });
    api.patch_status("prod-web", &PatchParams::default(), &Patch::Merge(&other_manager)).await.unwrap();

    let second = status(json!({ "SessionQuotaReached": 2 }));
    let applied = api.patch_status("prod-web", &params, &Patch::Apply(&second)).await.unwrap();

    let applied = applied.status.expect("a status");
    let counts = applied.coverage.expect("coverage").unmirrored_by_reason;
    assert_eq!(counts.into_iter().collect::<Vec<_>>(), [("SessionQuotaReached".to_owned(), 2)]);
    assert_eq!(applied.target_id.as_deref(), Some("tmt-0a1b2c3d4e5f60718"), "a field that another manager set stays");
    assert_eq!(applied.observed_generation, Some(1));
}
