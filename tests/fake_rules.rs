//! One test per AWS Traffic Mirroring rule that the in-memory EC2 must obey, called through
//! the `Ec2` trait as the controller calls it. moto skips these rules, so the fake is the
//! only place they are proven.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use vpc_mirror_controller::aws::ec2::Ec2;
use vpc_mirror_controller::aws::error::{Ec2Error, ErrorKind, code};
use vpc_mirror_controller::aws::fake::FakeEc2;
use vpc_mirror_controller::aws::fake::load::{AccountBuckets, FaultRates, LoadModel};
use vpc_mirror_controller::aws::model::{CreateSession, InstanceQuery, ModifySession, Page, Session};

const CREATE: &str = "CreateTrafficMirrorSession";

/// A fake with one supported instance of one ordinary interface, an NLB target and a filter.
struct Fixture {
    ec2: FakeEc2,
    instance: String,
    interface: String,
    target: String,
    filter: String,
}

impl Fixture {
    fn new() -> Self {
        let ec2 = FakeEc2::new();
        let (instance, interfaces) = ec2.add_instance("m5.large", &[], &["interface"]);
        let target = ec2.add_target(None);
        let filter = ec2.add_filter();
        Fixture { ec2, instance, interface: interfaces[0].clone(), target, filter }
    }

    /// Adds a supported instance with one ordinary interface and returns the interface id.
    fn add_interface(&self) -> String {
        let (_, interfaces) = self.ec2.add_instance("m5.large", &[], &["interface"]);
        interfaces[0].clone()
    }

    /// Builds a create request without a ClientToken from the fixture's interface to its target.
    fn request(&self, number: i32) -> CreateSession {
        CreateSession {
            network_interface_id: self.interface.clone(),
            target_id: self.target.clone(),
            filter_id: self.filter.clone(),
            number,
            packet_length: None,
            virtual_network_id: None,
            description: Some("rule test".to_string()),
            tags: BTreeMap::new(),
            client_token: String::new(),
        }
    }

    fn request_on(&self, interface: &str, number: i32) -> CreateSession {
        CreateSession { network_interface_id: interface.to_string(), ..self.request(number) }
    }

    async fn create(&self, request: &CreateSession) -> Session {
        match self.ec2.create_session(request).await {
            Ok(session) => session,
            Err(error) => panic!("create of {request:?} failed: {error}"),
        }
    }

    async fn create_error(&self, request: &CreateSession) -> Ec2Error {
        match self.ec2.create_session(request).await {
            Ok(session) => panic!("create of {request:?} succeeded with {session:?}, expected an error"),
            Err(error) => error,
        }
    }
}

fn error_code(error: &Ec2Error) -> &str {
    error.code.as_deref().unwrap_or("no error code")
}

fn modify_number(session_id: &str, number: i32) -> ModifySession {
    ModifySession { session_id: session_id.to_string(), number: Some(number), ..ModifySession::default() }
}

/// Follows `next_token` from the first page to the last and returns every item in order.
async fn read_all<T, F, Fut>(mut describe: F) -> (Vec<T>, usize)
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<Page<T>, Ec2Error>>,
{
    let mut items = Vec::new();
    let mut pages = 0;
    let mut next_token = None;
    loop {
        let page = describe(next_token).await.expect("describe succeeds");
        pages += 1;
        items.extend(page.items);
        match page.next_token {
            Some(token) => next_token = Some(token),
            None => return (items, pages),
        }
    }
}

#[tokio::test]
async fn fourth_session_on_interface_rejected() {
    let fixture = Fixture::new();
    for number in 1..=3 {
        fixture.create(&fixture.request(number)).await;
    }

    let error = fixture.create_error(&fixture.request(4)).await;

    assert_eq!(error_code(&error), code::SESSIONS_PER_INTERFACE_LIMIT);
    assert_eq!(fixture.ec2.sessions().len(), 3);
}

#[tokio::test]
async fn session_number_outside_range_rejected() {
    let fixture = Fixture::new();

    for number in [0, -1, 32767] {
        let error = fixture.create_error(&fixture.request(number)).await;
        assert_eq!(error_code(&error), code::INVALID_PARAMETER_VALUE, "session number {number}");
    }

    assert!(fixture.ec2.sessions().is_empty());
}

#[tokio::test]
async fn session_number_range_bounds_accepted() {
    let fixture = Fixture::new();

    let lowest = fixture.create(&fixture.request(1)).await;
    let highest = fixture.create(&fixture.request(32766)).await;

    assert_eq!(lowest.number, 1);
    assert_eq!(highest.number, 32766);
}

#[tokio::test]
async fn session_number_unique_per_interface() {
    let fixture = Fixture::new();
    let other_interface = fixture.add_interface();
    fixture.create(&fixture.request(7)).await;

    let error = fixture.create_error(&fixture.request(7)).await;
    let on_other_interface = fixture.create(&fixture.request_on(&other_interface, 7)).await;

    assert_eq!(error_code(&error), code::INVALID_PARAMETER_VALUE);
    assert_eq!(on_other_interface.number, 7);
    assert_eq!(fixture.ec2.sessions().len(), 2);
}

#[tokio::test]
async fn modify_to_taken_number_rejected() {
    let fixture = Fixture::new();
    let first = fixture.create(&fixture.request(1)).await;
    let second = fixture.create(&fixture.request(2)).await;

    let error = fixture.ec2.modify_session(&modify_number(&second.id, 1)).await.unwrap_err();
    let same_number = fixture.ec2.modify_session(&modify_number(&first.id, 1)).await;
    let free_number = fixture.ec2.modify_session(&modify_number(&second.id, 3)).await;

    assert_eq!(error_code(&error), code::INVALID_PARAMETER_VALUE);
    assert_eq!(error.operation, "ModifyTrafficMirrorSession");
    assert_eq!(same_number.expect("a session keeps its own number").number, 1);
    assert_eq!(free_number.expect("a free number is accepted").number, 3);
}

#[tokio::test]
async fn packet_length_outside_range_rejected() {
    let fixture = Fixture::new();

    for length in [0, -1, 8501] {
        let request = CreateSession { packet_length: Some(length), ..fixture.request(1) };
        let error = fixture.create_error(&request).await;
        assert_eq!(error_code(&error), code::INVALID_PARAMETER_VALUE, "packet length {length}");
    }

    assert!(fixture.ec2.sessions().is_empty());
}

#[tokio::test]
async fn packet_length_range_bounds_accepted() {
    let fixture = Fixture::new();

    let shortest = fixture.create(&CreateSession { packet_length: Some(1), ..fixture.request(1) }).await;
    let longest = fixture.create(&CreateSession { packet_length: Some(8500), ..fixture.request(2) }).await;
    let whole_packet = fixture.create(&CreateSession { packet_length: None, ..fixture.request(3) }).await;

    assert_eq!(shortest.packet_length, Some(1));
    assert_eq!(longest.packet_length, Some(8500));
    assert_eq!(whole_packet.packet_length, None);
}

#[tokio::test]
async fn modify_packet_length_outside_range_rejected() {
    let fixture = Fixture::new();
    let session = fixture.create(&fixture.request(1)).await;

    for length in [0, 8501] {
        let change =
            ModifySession { session_id: session.id.clone(), packet_length: Some(length), ..ModifySession::default() };
        let error = fixture.ec2.modify_session(&change).await.unwrap_err();
        assert_eq!(error_code(&error), code::INVALID_PARAMETER_VALUE, "packet length {length}");
    }

    assert_eq!(fixture.ec2.sessions()[0].packet_length, None);
}

#[tokio::test]
async fn client_token_longer_than_64_rejected() {
    let fixture = Fixture::new();
    let too_long = CreateSession { client_token: "a".repeat(65), ..fixture.request(1) };
    let longest = CreateSession { client_token: "a".repeat(64), ..fixture.request(1) };

    let error = fixture.create_error(&too_long).await;
    let session = fixture.create(&longest).await;

    assert_eq!(error_code(&error), code::INVALID_PARAMETER_VALUE);
    assert_eq!(session.number, 1);
    assert_eq!(fixture.ec2.sessions().len(), 1);
}

#[tokio::test]
async fn client_token_non_ascii_rejected() {
    let fixture = Fixture::new();
    let request = CreateSession { client_token: "token-é".to_string(), ..fixture.request(1) };

    let error = fixture.create_error(&request).await;

    assert_eq!(error_code(&error), code::INVALID_PARAMETER_VALUE);
    assert!(fixture.ec2.sessions().is_empty());
}

#[tokio::test]
async fn client_token_repeat_returns_first_session() {
    let fixture = Fixture::new();
    let request = CreateSession { client_token: "retry-after-timeout".to_string(), ..fixture.request(1) };

    let first = fixture.create(&request).await;
    let repeat = fixture.create(&request).await;

    assert_eq!(repeat, first);
    assert_eq!(fixture.ec2.sessions().len(), 1);
    assert_eq!(fixture.ec2.calls(CREATE), 2);
}

#[tokio::test]
async fn client_token_after_delete_returns_deleted() {
    let fixture = Fixture::new();
    let request = CreateSession { client_token: "heal-after-delete".to_string(), ..fixture.request(1) };
    let first = fixture.create(&request).await;
    fixture.ec2.delete_session(&first.id).await.expect("delete succeeds");

    let repeat = fixture.create(&request).await;

    assert_eq!(repeat.id, first.id);
    assert!(fixture.ec2.sessions().is_empty(), "a reused token must create nothing");
}

#[tokio::test]
async fn client_token_other_parameters_mismatch() {
    let fixture = Fixture::new();
    let request = CreateSession { client_token: "one-attempt".to_string(), ..fixture.request(1) };
    fixture.create(&request).await;

    let other_number = CreateSession { number: 2, ..request.clone() };
    let other_length = CreateSession { packet_length: Some(128), ..request.clone() };
    let number_error = fixture.create_error(&other_number).await;
    let length_error = fixture.create_error(&other_length).await;

    assert_eq!(error_code(&number_error), code::IDEMPOTENT_PARAMETER_MISMATCH);
    assert_eq!(error_code(&length_error), code::IDEMPOTENT_PARAMETER_MISMATCH);
    assert_eq!(fixture.ec2.sessions().len(), 1);
}

#[tokio::test]
async fn unsupported_instance_type_rejected() {
    let fixture = Fixture::new();
    let (_, interfaces) = fixture.ec2.add_instance("t2.micro", &[], &["interface"]);

    let error = fixture.create_error(&fixture.request_on(&interfaces[0], 1)).await;

    assert_eq!(error_code(&error), code::NETWORK_INTERFACE_NOT_SUPPORTED);
    assert!(fixture.ec2.sessions().is_empty());
}

#[tokio::test]
async fn unsupported_types_override_table() {
    let fixture = Fixture::new();
    fixture.ec2.set_unsupported_types(&["m5.large"]);
    let (_, interfaces) = fixture.ec2.add_instance("t2.micro", &[], &["interface"]);

    let error = fixture.create_error(&fixture.request(1)).await;
    let session = fixture.create(&fixture.request_on(&interfaces[0], 1)).await;

    assert_eq!(error_code(&error), code::NETWORK_INTERFACE_NOT_SUPPORTED);
    assert_eq!(session.network_interface_id, interfaces[0]);
}

#[tokio::test]
async fn non_interface_type_rejected() {
    let fixture = Fixture::new();
    let types = ["trunk", "branch", "efa", "gateway_load_balancer_endpoint", "nat_gateway"];
    let (_, interfaces) = fixture.ec2.add_instance("m5.large", &[], &types);

    for (interface, interface_type) in interfaces.iter().zip(types) {
        let error = fixture.create_error(&fixture.request_on(interface, 1)).await;
        assert_eq!(error_code(&error), code::NETWORK_INTERFACE_NOT_SUPPORTED, "interface type {interface_type}");
    }

    assert!(fixture.ec2.sessions().is_empty());
}

#[tokio::test]
async fn target_interface_cannot_be_source() {
    let fixture = Fixture::new();
    let interface_target = fixture.ec2.add_target(Some(&fixture.interface));
    let other_interface = fixture.add_interface();

    let error = fixture.create_error(&fixture.request(1)).await;
    let to_interface_target = CreateSession { target_id: interface_target, ..fixture.request_on(&other_interface, 1) };
    let session = fixture.create(&to_interface_target).await;

    // AWS documents the rule but not its error code, so the fake uses the generic one.
    assert_eq!(error_code(&error), code::INVALID_PARAMETER_VALUE);
    assert_eq!(session.network_interface_id, other_interface);
    assert_eq!(fixture.ec2.sessions().len(), 1);
}

#[tokio::test]
async fn unknown_interface_not_found() {
    let fixture = Fixture::new();

    let error = fixture.create_error(&fixture.request_on("eni-0ffffffffffffffff", 1)).await;

    assert_eq!(error_code(&error), code::NETWORK_INTERFACE_NOT_FOUND);
}

#[tokio::test]
async fn unknown_target_not_found() {
    let fixture = Fixture::new();
    let request = CreateSession { target_id: "tmt-0ffffffffffffffff".to_string(), ..fixture.request(1) };

    let error = fixture.create_error(&request).await;

    assert_eq!(error_code(&error), code::TARGET_NOT_FOUND);
}

#[tokio::test]
async fn unknown_filter_not_found() {
    let fixture = Fixture::new();
    let request = CreateSession { filter_id: "tmf-0ffffffffffffffff".to_string(), ..fixture.request(1) };

    let error = fixture.create_error(&request).await;

    assert_eq!(error_code(&error), code::FILTER_NOT_FOUND);
}

#[tokio::test]
async fn removed_target_not_found() {
    let fixture = Fixture::new();
    fixture.ec2.remove_target(&fixture.target);

    let error = fixture.create_error(&fixture.request(1)).await;

    assert_eq!(error_code(&error), code::TARGET_NOT_FOUND);
}

#[tokio::test]
async fn modify_to_unknown_target_or_filter() {
    let fixture = Fixture::new();
    let session = fixture.create(&fixture.request(1)).await;
    let to_target = ModifySession {
        session_id: session.id.clone(),
        target_id: Some("tmt-0ffffffffffffffff".to_string()),
        ..ModifySession::default()
    };
    let to_filter = ModifySession {
        session_id: session.id.clone(),
        filter_id: Some("tmf-0ffffffffffffffff".to_string()),
        ..ModifySession::default()
    };

    let target_error = fixture.ec2.modify_session(&to_target).await.unwrap_err();
    let filter_error = fixture.ec2.modify_session(&to_filter).await.unwrap_err();

    assert_eq!(error_code(&target_error), code::TARGET_NOT_FOUND);
    assert_eq!(error_code(&filter_error), code::FILTER_NOT_FOUND);
    assert_eq!(fixture.ec2.sessions()[0], session);
}

#[tokio::test]
async fn interface_target_accepts_ten_sources() {
    let fixture = Fixture::new();
    let (_, target_interfaces) = fixture.ec2.add_instance("m5.large", &[], &["interface"]);
    let target = fixture.ec2.add_target(Some(&target_interfaces[0]));
    let sources: Vec<String> = (0..11).map(|_| fixture.add_interface()).collect();

    for source in &sources[..10] {
        fixture.create(&CreateSession { target_id: target.clone(), ..fixture.request_on(source, 1) }).await;
    }
    let eleventh = CreateSession { target_id: target.clone(), ..fixture.request_on(&sources[10], 1) };
    let error = fixture.create_error(&eleventh).await;
    // The limit counts sources, not sessions, so a known source may add a second session.
    let second_from_known = CreateSession { target_id: target.clone(), ..fixture.request_on(&sources[0], 2) };
    let second_session = fixture.create(&second_from_known).await;

    assert_eq!(error_code(&error), code::SOURCES_PER_TARGET_LIMIT);
    assert_eq!(second_session.target_id, target);
    assert_eq!(fixture.ec2.sessions().len(), 11);
}

#[tokio::test]
async fn load_balancer_target_has_no_source_limit() {
    let fixture = Fixture::new();
    let sources: Vec<String> = (0..25).map(|_| fixture.add_interface()).collect();

    for source in &sources {
        fixture.create(&fixture.request_on(source, 1)).await;
    }

    assert_eq!(fixture.ec2.sessions().len(), 25);
}

#[tokio::test]
async fn delete_unknown_session_not_found() {
    let fixture = Fixture::new();
    let session = fixture.create(&fixture.request(1)).await;
    fixture.ec2.delete_session(&session.id).await.expect("first delete succeeds");

    let again = fixture.ec2.delete_session(&session.id).await.unwrap_err();
    let never_existed = fixture.ec2.delete_session("tms-0ffffffffffffffff").await.unwrap_err();

    assert_eq!(error_code(&again), code::SESSION_NOT_FOUND);
    assert_eq!(error_code(&never_existed), code::SESSION_NOT_FOUND);
}

#[tokio::test]
async fn modify_unknown_session_not_found() {
    let fixture = Fixture::new();
    let session = fixture.create(&fixture.request(1)).await;
    fixture.ec2.delete_session(&session.id).await.expect("delete succeeds");

    let deleted = fixture.ec2.modify_session(&modify_number(&session.id, 2)).await.unwrap_err();
    let never_existed = fixture.ec2.modify_session(&modify_number("tms-0ffffffffffffffff", 2)).await.unwrap_err();

    assert_eq!(error_code(&deleted), code::SESSION_NOT_FOUND);
    assert_eq!(error_code(&never_existed), code::SESSION_NOT_FOUND);
}

#[tokio::test]
async fn deleting_interface_deletes_sessions() {
    let fixture = Fixture::new();
    let other_interface = fixture.add_interface();
    let doomed = fixture.create(&fixture.request(1)).await;
    let kept = fixture.create(&fixture.request_on(&other_interface, 1)).await;

    fixture.ec2.delete_interface(&fixture.interface);
    let error = fixture.ec2.delete_session(&doomed.id).await.unwrap_err();

    assert_eq!(fixture.ec2.sessions(), vec![kept]);
    assert_eq!(error_code(&error), code::SESSION_NOT_FOUND);
}

#[tokio::test]
async fn removing_instance_keeps_sessions() {
    let fixture = Fixture::new();
    let session = fixture.create(&fixture.request(1)).await;

    fixture.ec2.remove_instance(&fixture.instance);
    let every_instance = InstanceQuery::default();
    let (instances, _) = read_all(|token| fixture.ec2.describe_instances(&every_instance, token)).await;
    let (sessions, _) = read_all(|token| fixture.ec2.describe_sessions(&[], token)).await;

    assert!(instances.is_empty());
    assert_eq!(sessions, vec![session]);
}

#[tokio::test]
async fn small_pages_yield_every_item_once() {
    let fixture = Fixture::new();
    let filters: Vec<String> = (0..6).map(|_| fixture.ec2.add_filter()).collect();
    for _ in 0..12 {
        let interface = fixture.add_interface();
        fixture.ec2.add_target(None);
        fixture.create(&fixture.request_on(&interface, 1)).await;
    }
    fixture.ec2.set_page_size(5);

    let every_instance = InstanceQuery::default();
    let (instances, instance_pages) = read_all(|token| fixture.ec2.describe_instances(&every_instance, token)).await;
    let (sessions, session_pages) = read_all(|token| fixture.ec2.describe_sessions(&[], token)).await;
    let (targets, target_pages) = read_all(|token| fixture.ec2.describe_targets(token)).await;
    let (described_filters, filter_pages) = read_all(|token| fixture.ec2.describe_filters(&filters, token)).await;

    let instance_ids: BTreeSet<String> = instances.iter().map(|i| i.id.clone()).collect();
    let session_ids: BTreeSet<String> = sessions.iter().map(|s| s.id.clone()).collect();
    let target_ids: BTreeSet<String> = targets.iter().map(|t| t.id.clone()).collect();
    let filter_ids: BTreeSet<String> = described_filters.iter().map(|f| f.id.clone()).collect();
    assert_eq!(instances.len(), 13);
    assert_eq!(instance_ids.len(), 13);
    assert_eq!(instance_pages, 3);
    assert_eq!(sessions.len(), 12);
    assert_eq!(session_ids.len(), 12);
    assert_eq!(session_pages, 3);
    assert_eq!(targets.len(), 13);
    assert_eq!(target_ids.len(), 13);
    assert_eq!(target_pages, 3);
    assert_eq!(filter_ids, filters.iter().cloned().collect::<BTreeSet<String>>());
    assert_eq!(described_filters.len(), 6);
    assert_eq!(filter_pages, 2);
}

#[tokio::test]
async fn default_page_size_is_1000() {
    let fixture = Fixture::new();
    for _ in 0..1500 {
        fixture.add_interface();
    }

    let first_page = fixture.ec2.describe_instances(&InstanceQuery::default(), None).await.expect("describe succeeds");
    let every_instance = InstanceQuery::default();
    let (instances, pages) = read_all(|token| fixture.ec2.describe_instances(&every_instance, token)).await;

    let instance_ids: BTreeSet<String> = instances.iter().map(|i| i.id.clone()).collect();
    assert_eq!(first_page.items.len(), 1000);
    assert!(first_page.next_token.is_some());
    assert_eq!(instances.len(), 1501);
    assert_eq!(instance_ids.len(), 1501);
    assert_eq!(pages, 2);
}

#[tokio::test]
async fn sessions_over_1000_paged() {
    let fixture = Fixture::new();
    for _ in 0..400 {
        let (_, interfaces) = fixture.ec2.add_instance("m5.large", &[], &["interface"]);
        for number in 1..=3 {
            fixture.create(&fixture.request_on(&interfaces[0], number)).await;
        }
    }

    let (sessions, pages) = read_all(|token| fixture.ec2.describe_sessions(&[], token)).await;

    let session_ids: BTreeSet<String> = sessions.iter().map(|s| s.id.clone()).collect();
    assert_eq!(sessions.len(), 1200);
    assert_eq!(session_ids.len(), 1200);
    assert_eq!(pages, 2);
}

#[tokio::test]
async fn describe_sessions_by_interface() {
    let fixture = Fixture::new();
    let other_interface = fixture.add_interface();
    let first = fixture.create(&fixture.request(1)).await;
    let second = fixture.create(&fixture.request(2)).await;
    fixture.create(&fixture.request_on(&other_interface, 1)).await;
    let filters = vec![("network-interface-id".to_string(), vec![fixture.interface.clone()])];

    let (sessions, _) = read_all(|token| fixture.ec2.describe_sessions(&filters, token)).await;

    assert_eq!(sessions, vec![first, second]);
}

#[tokio::test]
async fn describe_instances_unknown_id_fails() {
    let fixture = Fixture::new();
    let query = InstanceQuery {
        instance_ids: vec![fixture.instance.clone(), "i-0ffffffffffffffff".to_string()],
        filters: vec![],
    };

    let error = fixture.ec2.describe_instances(&query, None).await.unwrap_err();

    assert_eq!(error_code(&error), "InvalidInstanceID.NotFound");
}

#[tokio::test]
async fn describe_instances_by_ids_unpaged() {
    let fixture = Fixture::new();
    let mut ids = vec![fixture.instance.clone()];
    for _ in 0..7 {
        let (id, _) = fixture.ec2.add_instance("m5.large", &[], &["interface"]);
        ids.push(id);
    }
    fixture.ec2.set_page_size(5);
    let query = InstanceQuery { instance_ids: ids.clone(), filters: vec![] };

    let page = fixture.ec2.describe_instances(&query, None).await.expect("describe succeeds");

    let described: Vec<String> = page.items.iter().map(|i| i.id.clone()).collect();
    assert_eq!(described, ids);
    assert_eq!(page.next_token, None);
}

#[tokio::test]
async fn virtual_network_id_assigned_and_unique() {
    let fixture = Fixture::new();
    let explicit = fixture.create(&CreateSession { virtual_network_id: Some(1), ..fixture.request(1) }).await;
    let mut assigned = BTreeSet::new();
    for number in 2..=3 {
        assigned.insert(fixture.create(&fixture.request(number)).await.virtual_network_id);
    }
    for _ in 0..5 {
        let interface = fixture.add_interface();
        assigned.insert(fixture.create(&fixture.request_on(&interface, 1)).await.virtual_network_id);
    }

    assert_eq!(explicit.virtual_network_id, Some(1));
    assert_eq!(assigned.len(), 7, "every omitted virtual network id gets its own value: {assigned:?}");
    assert!(!assigned.contains(&None));
    assert!(!assigned.contains(&Some(1)), "an assigned id must differ from one already in use");
}

#[tokio::test]
async fn fail_next_fails_once_and_counts() {
    let fixture = Fixture::new();
    let throttled = Ec2Error::rejected(CREATE, code::REQUEST_LIMIT_EXCEEDED, "Request limit exceeded.");
    fixture.ec2.fail_next(CREATE, throttled);

    let error = fixture.create_error(&fixture.request(1)).await;
    let sessions_after_error = fixture.ec2.sessions().len();
    let session = fixture.create(&fixture.request(1)).await;

    assert_eq!(error_code(&error), code::REQUEST_LIMIT_EXCEEDED);
    assert!(error.is_retryable());
    assert_eq!(sessions_after_error, 0);
    assert_eq!(session.number, 1);
    assert_eq!(fixture.ec2.calls(CREATE), 2);
    assert_eq!(fixture.ec2.write_calls(), 2);
}

#[tokio::test]
async fn fail_next_queues_per_operation() {
    let fixture = Fixture::new();
    fixture.ec2.fail_next(
        "DescribeTrafficMirrorSessions",
        Ec2Error::rejected("DescribeTrafficMirrorSessions", "InternalError", "first"),
    );
    fixture.ec2.fail_next(
        "DescribeTrafficMirrorSessions",
        Ec2Error::rejected("DescribeTrafficMirrorSessions", "InternalError", "second"),
    );

    let create = fixture.ec2.create_session(&fixture.request(1)).await;
    let first = fixture.ec2.describe_sessions(&[], None).await.unwrap_err();
    let second = fixture.ec2.describe_sessions(&[], None).await.unwrap_err();
    let third = fixture.ec2.describe_sessions(&[], None).await;

    assert!(create.is_ok(), "a fault of another operation must not fire: {create:?}");
    assert_eq!(first.message, "first");
    assert_eq!(second.message, "second");
    assert_eq!(third.expect("the queue is empty").items.len(), 1);
    assert_eq!(fixture.ec2.calls("DescribeTrafficMirrorSessions"), 3);
}

#[tokio::test]
#[ignore = "slow: 10 to 15 s in a debug build, because the fake scans every session on each create"]
async fn account_session_limit_is_10000() {
    let fixture = Fixture::new();
    let mut interfaces = Vec::new();
    for _ in 0..3334 {
        let (_, ids) = fixture.ec2.add_instance("m5.large", &[], &["interface"]);
        interfaces.push(ids[0].clone());
    }
    let mut created = 0;
    'fill: for interface in &interfaces {
        for number in 1..=3 {
            if created == 10_000 {
                break 'fill;
            }
            // An explicit virtual network id skips the fake's search for a free one.
            let request = CreateSession { virtual_network_id: Some(1), ..fixture.request_on(interface, number) };
            fixture.create(&request).await;
            created += 1;
        }
    }

    let error = fixture.create_error(&fixture.request(1)).await;

    assert_eq!(error_code(&error), code::SESSION_LIMIT);
    assert_eq!(fixture.ec2.sessions().len(), 10_000);
}

// The load model: buckets per call class, lost responses, eventual consistency.

#[tokio::test(start_paused = true)]
async fn unfiltered_instance_crawl_has_smaller_bucket() {
    let fixture = Fixture::new();
    fixture.ec2.set_load_model(LoadModel { buckets: Some(AccountBuckets::AWS_DEFAULTS), ..LoadModel::default() });
    let bare = InstanceQuery::default();
    let filtered = InstanceQuery {
        instance_ids: vec![],
        filters: vec![("instance-state-name".to_string(), vec!["running".to_string()])],
    };

    for _ in 0..50 {
        fixture.ec2.describe_instances(&bare, None).await.expect("the unfiltered bucket has room for 50 calls");
    }
    let error = fixture.ec2.describe_instances(&bare, None).await.unwrap_err();
    let filtered_result = fixture.ec2.describe_instances(&filtered, None).await;

    assert_eq!(error_code(&error), code::REQUEST_LIMIT_EXCEEDED);
    assert!(filtered_result.is_ok(), "filtered calls have a bucket of their own");
}

#[tokio::test(start_paused = true)]
async fn new_session_hidden_until_visibility_delay() {
    let fixture = Fixture::new();
    let delay = Duration::from_secs(10);
    fixture.ec2.set_load_model(LoadModel { visibility_delay: delay, ..LoadModel::default() });
    let created = fixture.create(&fixture.request(1)).await;

    let hidden = fixture.ec2.describe_sessions(&[], None).await.unwrap().items;
    tokio::time::advance(delay).await;
    let visible = fixture.ec2.describe_sessions(&[], None).await.unwrap().items;

    assert!(hidden.is_empty());
    assert_eq!(visible.len(), 1);
    assert_eq!(visible[0].id, created.id);
    // The quota and number checks see the hidden session at once.
    assert_eq!(error_code(&fixture.create_error(&fixture.request(1)).await), code::INVALID_PARAMETER_VALUE);
}

#[tokio::test(start_paused = true)]
async fn lost_response_then_same_token_returns_session() {
    let fixture = Fixture::new();
    let faults = FaultRates { timeout: 1.0, ..FaultRates::default() };
    fixture.ec2.set_load_model(LoadModel { faults, seed: 9, ..LoadModel::default() });
    let mut request = fixture.request(1);
    request.client_token = "lost-response-token".to_string();

    // Every call times out; about half of them after the session was made.
    let mut attempts = 0;
    while fixture.ec2.sessions().is_empty() {
        attempts += 1;
        assert!(attempts < 50, "no timed-out create took effect");
        let error = fixture.create_error(&request).await;
        assert_eq!(error.kind, ErrorKind::Transient);
        assert!(error.code.is_none());
    }
    fixture.ec2.set_load_model(LoadModel::default());
    let retried = fixture.create(&request).await;

    let sessions = fixture.ec2.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(retried.id, sessions[0].id);
}
