//! An in-memory EC2 that obeys the AWS Traffic Mirroring rules moto skips: three sessions
//! per interface, unique session numbers, quotas, idempotent ClientTokens (including the
//! return of a deleted session for a reused token), unsupported sources, pagination, and
//! injected errors. Tests use it for rules and faults; moto proves the wire format.
//!
//! It is also a load model (`load`): the account's token buckets, latency, random faults and
//! eventual consistency. `actors` plays the other people and tools of the account. Lookups are
//! indexed, so fleets of 100,000 interfaces cost the benchmarks little.

pub mod actors;
pub mod load;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use tokio::time::Instant;

use self::load::{Admission, CallClass, LoadModel, LoadState, timeout_error};

use super::ec2::Ec2;
use super::error::{Ec2Error, code};
use super::model::{
    CreateSession, Filter, Instance, InstanceQuery, InterfaceAttachment, MAX_RESULTS, ModifySession, NetworkInterface,
    Page, Session, Target,
};
use crate::instance_types::{Verdict, table_verdict};

/// Sessions per account.
pub const ACCOUNT_SESSION_LIMIT: usize = 10_000;
/// Sources per network-interface target (the smaller instance sizes).
pub const SOURCES_PER_INTERFACE_TARGET: usize = 10;
/// Sessions per source interface.
pub const SESSIONS_PER_INTERFACE: usize = 3;

/// The parameters a ClientToken is bound to, without the token itself.
type TokenFingerprint =
    (String, String, String, i32, Option<i32>, Option<i32>, Option<String>, BTreeMap<String, String>);

struct State {
    instances: BTreeMap<String, Instance>,
    sessions: BTreeMap<String, Session>,
    /// The instance each attached interface belongs to.
    interface_owner: HashMap<String, String>,
    /// Session ids by source interface.
    sessions_by_interface: HashMap<String, BTreeSet<String>>,
    /// New sessions that DescribeTrafficMirrorSessions does not show yet.
    invisible_until: HashMap<String, Instant>,
    account_session_limit: usize,
    /// The start of the search for the lowest free virtual network id; the ids below it are taken.
    free_vni_from: i32,
    load: LoadState,
    /// Sessions as they were before each modify or delete call, for ownership checks.
    session_writes: Vec<(&'static str, Session)>,
    targets: BTreeMap<String, Target>,
    filters: BTreeSet<String>,
    tokens: HashMap<String, (TokenFingerprint, Session)>,
    used_virtual_network_ids: HashSet<i32>,
    next_id: u64,
    page_size: Option<usize>,
    faults: HashMap<&'static str, VecDeque<Ec2Error>>,
    calls: BTreeMap<&'static str, usize>,
    unsupported_types: Option<HashSet<String>>,
    /// Interfaces that exist but are attached to no instance.
    detached_interfaces: BTreeSet<String>,
}

impl Default for State {
    fn default() -> Self {
        State {
            instances: BTreeMap::new(),
            sessions: BTreeMap::new(),
            interface_owner: HashMap::new(),
            sessions_by_interface: HashMap::new(),
            invisible_until: HashMap::new(),
            account_session_limit: ACCOUNT_SESSION_LIMIT,
            free_vni_from: 1,
            load: LoadState::new(LoadModel::default()),
            session_writes: Vec::new(),
            targets: BTreeMap::new(),
            filters: BTreeSet::new(),
            tokens: HashMap::new(),
            used_virtual_network_ids: HashSet::new(),
            next_id: 0,
            page_size: None,
            faults: HashMap::new(),
            calls: BTreeMap::new(),
            unsupported_types: None,
            detached_interfaces: BTreeSet::new(),
        }
    }
}

impl State {
    fn insert_session(&mut self, session: Session) {
        self.sessions_by_interface.entry(session.network_interface_id.clone()).or_default().insert(session.id.clone());
        self.sessions.insert(session.id.clone(), session);
    }

    fn remove_session(&mut self, session_id: &str) -> Option<Session> {
        let session = self.sessions.remove(session_id)?;
        self.invisible_until.remove(session_id);
        if let Some(ids) = self.sessions_by_interface.get_mut(&session.network_interface_id) {
            ids.remove(session_id);
            if ids.is_empty() {
                self.sessions_by_interface.remove(&session.network_interface_id);
            }
        }
        Some(session)
    }

    fn sessions_on<'a>(&'a self, interface_id: &str) -> impl Iterator<Item = &'a Session> + 'a {
        self.sessions_by_interface
            .get(interface_id)
            .into_iter()
            .flat_map(|ids| ids.iter().filter_map(|id| self.sessions.get(id)))
    }

    /// Returns the sessions on an interface that the checks of a create see: all of them, or
    /// with stale checks only those Describe shows.
    fn checked_sessions_on<'a>(&'a self, interface_id: &str) -> impl Iterator<Item = &'a Session> + 'a {
        let now = Instant::now();
        let stale = self.load.model.stale_checks;
        self.sessions_on(interface_id)
            .filter(move |s| !stale || self.invisible_until.get(&s.id).is_none_or(|until| *until <= now))
    }
}

/// The in-memory EC2. All methods take `&self`; state sits behind a mutex.
#[derive(Default)]
pub struct FakeEc2 {
    state: Mutex<State>,
}

fn hex_id(prefix: &str, counter: u64) -> String {
    format!("{prefix}-{counter:017x}")
}

/// Returns one page of `items`; items are references so that only the page is cloned, which
/// keeps paging through 100,000 instances linear.
fn page_of<T: Clone>(items: &[&T], next_token: Option<String>, page_size: usize) -> Result<Page<T>, Ec2Error> {
    let start: usize = match next_token {
        None => 0,
        Some(token) => token.parse().map_err(|_| {
            Ec2Error::rejected("Describe", code::INVALID_PARAMETER_VALUE, format!("invalid NextToken {token:?}"))
        })?,
    };
    let end = (start + page_size).min(items.len());
    let next_token = (end < items.len()).then(|| end.to_string());
    let page = items[start.min(end)..end].iter().map(|item| (*item).clone()).collect();
    Ok(Page { items: page, next_token })
}

impl FakeEc2 {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("fake EC2 lock is not poisoned")
    }

    fn new_id(state: &mut State, prefix: &str) -> String {
        state.next_id += 1;
        hex_id(prefix, state.next_id)
    }

    /// Admits a call: counts it, returns a queued error, lets the first half of its latency
    /// pass, takes a token from the account's bucket of its class and draws random faults.
    async fn admit(&self, operation: &'static str, unfiltered: bool) -> Result<Admission, Ec2Error> {
        let request_latency = {
            let mut state = self.lock();
            *state.calls.entry(operation).or_default() += 1;
            if let Some(error) = state.faults.get_mut(operation).and_then(VecDeque::pop_front) {
                return Err(error);
            }
            state.load.latency()
        };
        let half = request_latency / 2;
        if !half.is_zero() {
            tokio::time::sleep(half).await;
        }
        let (drawn, timeout_after) = {
            let mut state = self.lock();
            state.load.take_token(operation, CallClass::of(operation, unfiltered))?;
            (state.load.draw_fault(operation), state.load.model.timeout_after)
        };
        let lose_response = match drawn {
            Ok(lost) => lost,
            Err(error) if error.code.is_none() => {
                // A lost request: the client notices only when its timeout expires.
                tokio::time::sleep(timeout_after).await;
                return Err(error);
            }
            Err(error) => return Err(error),
        };
        let response_latency = if lose_response { timeout_after } else { request_latency - half };
        Ok(Admission { response_latency, lose_response })
    }

    /// Lets the rest of a call's latency pass and returns its result, or a timeout when the
    /// response was lost after the call took effect.
    async fn respond<T>(
        &self,
        operation: &'static str,
        admission: Admission,
        result: Result<T, Ec2Error>,
    ) -> Result<T, Ec2Error> {
        if !admission.response_latency.is_zero() {
            tokio::time::sleep(admission.response_latency).await;
        }
        if admission.lose_response {
            return Err(timeout_error(operation));
        }
        result
    }

    /// Makes the in-memory EC2 behave like a loaded account; see `load::LoadModel`.
    pub fn set_load_model(&self, model: LoadModel) {
        self.lock().load = LoadState::new(model);
    }

    /// Changes the account's session quota, which AWS raises on request.
    pub fn set_account_session_limit(&self, limit: usize) {
        self.lock().account_session_limit = limit;
    }

    /// Returns every session as it was when a ModifyTrafficMirrorSession or
    /// DeleteTrafficMirrorSession call named it, with the operation. Calls that failed count
    /// too: a write attempt on a session the caller does not own is the mistake to catch.
    pub fn session_writes(&self) -> Vec<(&'static str, Session)> {
        self.lock().session_writes.clone()
    }

    fn record_write(&self, operation: &'static str, session_id: &str) {
        let mut state = self.lock();
        if let Some(session) = state.sessions.get(session_id).cloned() {
            state.session_writes.push((operation, session));
        }
    }

    /// Returns a random index below `len` from the load model's seeded generator.
    pub fn pick(&self, len: usize) -> usize {
        self.lock().load.pick(len)
    }

    /// Meters mutating calls in a token bucket, as AWS does per account and region (50 calls,
    /// refilled at 5 per second by default), and leaves reads unmetered. A call over the bucket
    /// fails with RequestLimitExceeded.
    pub fn set_write_bucket(&self, capacity: u32, refill_per_second: f64) {
        let unlimited = load::BucketLimit { capacity: u32::MAX, refill_per_second: 1e9 };
        let buckets = load::AccountBuckets {
            non_mutating: unlimited,
            unfiltered_describe: unlimited,
            mutating: load::BucketLimit { capacity, refill_per_second },
        };
        let mut state = self.lock();
        let model = LoadModel { buckets: Some(buckets), ..state.load.model.clone() };
        state.load = LoadState::new(model);
    }

    /// Makes the next call of `operation` fail with `error`; repeated calls queue errors.
    pub fn fail_next(&self, operation: &'static str, error: Ec2Error) {
        self.lock().faults.entry(operation).or_default().push_back(error);
    }

    /// Returns how many times `operation` was called, failed calls included.
    pub fn calls(&self, operation: &str) -> usize {
        self.lock().calls.get(operation).copied().unwrap_or(0)
    }

    /// Returns every call count by operation.
    pub fn call_counts(&self) -> BTreeMap<&'static str, usize> {
        self.lock().calls.clone()
    }

    /// Returns the number of write calls (create, modify, delete).
    pub fn write_calls(&self) -> usize {
        ["CreateTrafficMirrorSession", "ModifyTrafficMirrorSession", "DeleteTrafficMirrorSession"]
            .iter()
            .map(|op| self.calls(op))
            .sum()
    }

    pub fn reset_calls(&self) {
        self.lock().calls.clear();
    }

    /// Caps every Describe page at `size` items, to exercise pagination with small fleets.
    pub fn set_page_size(&self, size: usize) {
        self.lock().page_size = Some(size);
    }

    /// Sets the instance types whose interfaces AWS rejects with NetworkInterfaceNotSupported;
    /// by default the built-in table decides.
    pub fn set_unsupported_types(&self, types: &[&str]) {
        self.lock().unsupported_types = Some(types.iter().map(|t| t.to_string()).collect());
    }

    /// Adds an instance and returns its id and its interface ids; `interface_types` gives the
    /// type of each interface in device-index order.
    pub fn add_instance(
        &self,
        instance_type: &str,
        tags: &[(&str, &str)],
        interface_types: &[&str],
    ) -> (String, Vec<String>) {
        let mut state = self.lock();
        let id = Self::new_id(&mut state, "i");
        let mut interfaces = Vec::new();
        for (index, interface_type) in interface_types.iter().enumerate() {
            let interface_id = Self::new_id(&mut state, "eni");
            let attachment_id = Self::new_id(&mut state, "eni-attach");
            interfaces.push(NetworkInterface {
                id: interface_id,
                interface_type: interface_type.to_string(),
                device_index: index as i32,
                network_card_index: 0,
                attachment_id: Some(attachment_id),
            });
        }
        let interface_ids: Vec<String> = interfaces.iter().map(|i| i.id.clone()).collect();
        for interface_id in &interface_ids {
            state.interface_owner.insert(interface_id.clone(), id.clone());
        }
        let instance = Instance {
            id: id.clone(),
            instance_type: instance_type.to_string(),
            state: "running".to_string(),
            vpc_id: Some("vpc-0000000000000000a".to_string()),
            subnet_id: Some("subnet-0000000000000000a".to_string()),
            availability_zone: Some("us-east-1a".to_string()),
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            network_interfaces: interfaces,
        };
        state.instances.insert(id.clone(), instance);
        (id, interface_ids)
    }

    /// Changes an instance in place, as another actor would (tags, state, type).
    pub fn update_instance(&self, instance_id: &str, change: impl FnOnce(&mut Instance)) {
        let mut state = self.lock();
        let instance = state.instances.get_mut(instance_id).expect("instance exists in the fake");
        change(instance);
        // The change may have added or removed interfaces.
        let attached: Vec<String> = instance.network_interfaces.iter().map(|i| i.id.clone()).collect();
        state.interface_owner.retain(|interface, owner| owner != instance_id || attached.contains(interface));
        for interface_id in attached {
            state.interface_owner.insert(interface_id, instance_id.to_string());
        }
    }

    /// Attaches a new interface to an instance and returns its id.
    pub fn attach_interface(&self, instance_id: &str) -> String {
        let mut state = self.lock();
        let interface_id = Self::new_id(&mut state, "eni");
        let attachment_id = Self::new_id(&mut state, "eni-attach");
        let instance = state.instances.get_mut(instance_id).expect("instance exists in the fake");
        let device_index = instance.network_interfaces.len() as i32;
        instance.network_interfaces.push(NetworkInterface {
            id: interface_id.clone(),
            interface_type: "interface".to_string(),
            device_index,
            network_card_index: 0,
            attachment_id: Some(attachment_id),
        });
        state.interface_owner.insert(interface_id.clone(), instance_id.to_string());
        interface_id
    }

    /// Deletes an interface; as in AWS, its sessions are deleted with it.
    pub fn delete_interface(&self, interface_id: &str) {
        let mut state = self.lock();
        Self::unplug(&mut state, interface_id);
        state.detached_interfaces.remove(interface_id);
        let doomed: Vec<String> = state.sessions_on(interface_id).map(|s| s.id.clone()).collect();
        for session_id in doomed {
            state.remove_session(&session_id);
        }
    }

    /// Removes an interface from the instance it is attached to.
    fn unplug(state: &mut State, interface_id: &str) {
        if let Some(owner) = state.interface_owner.remove(interface_id)
            && let Some(instance) = state.instances.get_mut(&owner)
        {
            instance.network_interfaces.retain(|i| i.id != interface_id);
        }
    }

    /// Detaches an interface from its instance; as in AWS, its sessions stay.
    pub fn detach_interface(&self, interface_id: &str) {
        let mut state = self.lock();
        Self::unplug(&mut state, interface_id);
        state.detached_interfaces.insert(interface_id.to_string());
    }

    /// Removes an instance; its sessions stay, as they do for a detached or stopped source.
    pub fn remove_instance(&self, instance_id: &str) {
        let mut state = self.lock();
        state.instances.remove(instance_id);
        state.interface_owner.retain(|_, owner| owner != instance_id);
    }

    /// Adds a target; with an interface id it is an ENI target, otherwise an NLB target.
    pub fn add_target(&self, network_interface_id: Option<&str>) -> String {
        let mut state = self.lock();
        let id = Self::new_id(&mut state, "tmt");
        let target_type = if network_interface_id.is_some() { "network-interface" } else { "network-load-balancer" };
        let target = Target {
            id: id.clone(),
            network_interface_id: network_interface_id.map(str::to_string),
            target_type: Some(target_type.to_string()),
        };
        state.targets.insert(id.clone(), target);
        id
    }

    pub fn remove_target(&self, target_id: &str) {
        self.lock().targets.remove(target_id);
    }

    pub fn add_filter(&self) -> String {
        let mut state = self.lock();
        let id = Self::new_id(&mut state, "tmf");
        state.filters.insert(id.clone());
        id
    }

    /// Creates a session as another tool would, bypassing call counts and faults.
    pub fn add_session_directly(&self, request: &CreateSession) -> Result<Session, Ec2Error> {
        let mut state = self.lock();
        Self::create_in(&mut state, request)
    }

    /// Deletes a session as another actor would.
    pub fn delete_session_directly(&self, session_id: &str) {
        self.lock().remove_session(session_id);
    }

    /// Changes a session as another actor would.
    pub fn modify_session_directly(&self, session_id: &str, change: impl FnOnce(&mut Session)) {
        let mut state = self.lock();
        let session = state.sessions.get_mut(session_id).expect("session exists in the fake");
        change(session);
    }

    /// Returns the instance an interface is attached to.
    pub fn instance_of_interface(&self, interface_id: &str) -> Option<String> {
        let state = self.lock();
        Self::interface_and_instance(&state, interface_id).map(|(instance, _)| instance.id.clone())
    }

    /// Returns the ids of every instance.
    pub fn instance_ids(&self) -> Vec<String> {
        self.lock().instances.keys().cloned().collect()
    }

    /// Returns the interfaces that a selector on one tag can mirror: type `interface`, on a
    /// running instance that carries the tag.
    pub fn selected_interfaces(&self, key: &str, value: &str) -> Vec<String> {
        let state = self.lock();
        state
            .instances
            .values()
            .filter(|i| i.state == "running" && i.tags.get(key).map(String::as_str) == Some(value))
            .flat_map(|i| i.network_interfaces.iter())
            .filter(|n| n.interface_type == "interface")
            .map(|n| n.id.clone())
            .collect()
    }

    /// Returns every session, by id.
    pub fn sessions(&self) -> Vec<Session> {
        self.lock().sessions.values().cloned().collect()
    }

    /// Returns the sessions whose source is this interface, hidden ones included, by id.
    pub fn sessions_on_interface(&self, interface_id: &str) -> Vec<Session> {
        self.lock().sessions_on(interface_id).cloned().collect()
    }

    fn page_size(state: &State) -> usize {
        state.page_size.unwrap_or(MAX_RESULTS as usize)
    }

    fn interface_and_instance<'a>(
        state: &'a State,
        interface_id: &str,
    ) -> Option<(&'a Instance, &'a NetworkInterface)> {
        let instance = state.instances.get(state.interface_owner.get(interface_id)?)?;
        instance.network_interfaces.iter().find(|i| i.id == interface_id).map(|i| (instance, i))
    }

    fn is_unsupported(state: &State, instance_type: &str) -> bool {
        match &state.unsupported_types {
            Some(types) => types.contains(instance_type),
            None => table_verdict(instance_type) == Verdict::Unsupported,
        }
    }

    fn check_number(
        operation: &'static str,
        state: &State,
        interface_id: &str,
        number: i32,
        except: Option<&str>,
    ) -> Result<(), Ec2Error> {
        if !(1..=32766).contains(&number) {
            return Err(Ec2Error::rejected(
                operation,
                code::INVALID_PARAMETER_VALUE,
                format!("session number {number} is not between 1 and 32766"),
            ));
        }
        let number_in_use =
            state.checked_sessions_on(interface_id).any(|s| s.number == number && Some(s.id.as_str()) != except);
        if number_in_use {
            // AWS documents uniqueness but not this error's code; InvalidParameterValue is the
            // generic code of a rejected parameter.
            return Err(Ec2Error::rejected(
                operation,
                code::INVALID_PARAMETER_VALUE,
                format!("session number {number} is already used on network interface {interface_id}"),
            ));
        }
        Ok(())
    }

    fn check_packet_length(operation: &'static str, packet_length: Option<i32>) -> Result<(), Ec2Error> {
        match packet_length {
            Some(length) if !(1..=8500).contains(&length) => Err(Ec2Error::rejected(
                operation,
                code::INVALID_PARAMETER_VALUE,
                format!("packet length {length} is not between 1 and 8500"),
            )),
            _ => Ok(()),
        }
    }

    fn create_in(state: &mut State, request: &CreateSession) -> Result<Session, Ec2Error> {
        const OPERATION: &str = "CreateTrafficMirrorSession";
        let fingerprint: TokenFingerprint = (
            request.network_interface_id.clone(),
            request.target_id.clone(),
            request.filter_id.clone(),
            request.number,
            request.packet_length,
            request.virtual_network_id,
            request.description.clone(),
            request.tags.clone(),
        );
        if !request.client_token.is_empty() {
            if request.client_token.len() > 64 || !request.client_token.is_ascii() {
                return Err(Ec2Error::rejected(
                    OPERATION,
                    code::INVALID_PARAMETER_VALUE,
                    "ClientToken must be at most 64 ASCII characters",
                ));
            }
            if let Some((known, first_result)) = state.tokens.get(&request.client_token) {
                // The first result comes back even when that session has since been deleted.
                if *known == fingerprint {
                    return Ok(first_result.clone());
                }
                return Err(Ec2Error::rejected(
                    OPERATION,
                    code::IDEMPOTENT_PARAMETER_MISMATCH,
                    "the ClientToken was used before with other parameters",
                ));
            }
        }

        let (instance, interface) =
            Self::interface_and_instance(state, &request.network_interface_id).ok_or_else(|| {
                Ec2Error::rejected(
                    OPERATION,
                    code::NETWORK_INTERFACE_NOT_FOUND,
                    format!("the network interface {} does not exist", request.network_interface_id),
                )
            })?;
        let target = state.targets.get(&request.target_id).ok_or_else(|| {
            Ec2Error::rejected(
                OPERATION,
                code::TARGET_NOT_FOUND,
                format!("the target {} does not exist", request.target_id),
            )
        })?;
        if !state.filters.contains(&request.filter_id) {
            return Err(Ec2Error::rejected(
                OPERATION,
                code::FILTER_NOT_FOUND,
                format!("the filter {} does not exist", request.filter_id),
            ));
        }
        if interface.interface_type != "interface" || Self::is_unsupported(state, &instance.instance_type) {
            return Err(Ec2Error::rejected(
                OPERATION,
                code::NETWORK_INTERFACE_NOT_SUPPORTED,
                format!("{} must be attached to a supported instance", request.network_interface_id),
            ));
        }
        if state
            .targets
            .values()
            .any(|t| t.network_interface_id.as_deref() == Some(request.network_interface_id.as_str()))
        {
            // NOTE: AWS documents the rule but not its error code; InvalidParameterValue is a
            // guess, and the controller never relies on it because the plan skips such sources.
            return Err(Ec2Error::rejected(
                OPERATION,
                code::INVALID_PARAMETER_VALUE,
                format!("{} is a traffic mirror target and cannot be a source", request.network_interface_id),
            ));
        }
        Self::check_packet_length(OPERATION, request.packet_length)?;
        let on_interface = state.checked_sessions_on(&request.network_interface_id).count();
        if on_interface >= SESSIONS_PER_INTERFACE {
            return Err(Ec2Error::rejected(
                OPERATION,
                code::SESSIONS_PER_INTERFACE_LIMIT,
                format!("{} already has {SESSIONS_PER_INTERFACE} sessions", request.network_interface_id),
            ));
        }
        Self::check_number(OPERATION, state, &request.network_interface_id, request.number, None)?;
        if state.sessions.len() >= state.account_session_limit {
            return Err(Ec2Error::rejected(
                OPERATION,
                code::SESSION_LIMIT,
                format!("the account has {} sessions", state.account_session_limit),
            ));
        }
        if target.network_interface_id.is_some() {
            let sources: HashSet<&str> = state
                .sessions
                .values()
                .filter(|s| s.target_id == request.target_id)
                .map(|s| s.network_interface_id.as_str())
                .collect();
            if !sources.contains(request.network_interface_id.as_str()) && sources.len() >= SOURCES_PER_INTERFACE_TARGET
            {
                return Err(Ec2Error::rejected(
                    OPERATION,
                    code::SOURCES_PER_TARGET_LIMIT,
                    format!("target {} already has {SOURCES_PER_INTERFACE_TARGET} sources", request.target_id),
                ));
            }
        }

        let virtual_network_id = match request.virtual_network_id {
            Some(vni) => vni,
            None => {
                let free = (state.free_vni_from..=16_777_215)
                    .find(|v| !state.used_virtual_network_ids.contains(v))
                    .expect("a free VNI exists");
                state.free_vni_from = free + 1;
                free
            }
        };
        state.used_virtual_network_ids.insert(virtual_network_id);
        let id = Self::new_id(state, "tms");
        let session = Session {
            id: id.clone(),
            network_interface_id: request.network_interface_id.clone(),
            target_id: request.target_id.clone(),
            filter_id: request.filter_id.clone(),
            number: request.number,
            packet_length: request.packet_length,
            virtual_network_id: Some(virtual_network_id),
            description: request.description.clone(),
            tags: request.tags.clone(),
        };
        state.insert_session(session.clone());
        if !request.client_token.is_empty() {
            state.tokens.insert(request.client_token.clone(), (fingerprint, session.clone()));
        }
        Ok(session)
    }

    fn instance_matches(instance: &Instance, filters: &[(String, Vec<String>)]) -> Result<bool, Ec2Error> {
        for (name, values) in filters {
            let value = match name.as_str() {
                "instance-state-name" => Some(instance.state.as_str()),
                "vpc-id" => instance.vpc_id.as_deref(),
                "subnet-id" => instance.subnet_id.as_deref(),
                "instance-id" => Some(instance.id.as_str()),
                "availability-zone" => instance.availability_zone.as_deref(),
                other => {
                    return Err(Ec2Error::rejected(
                        "DescribeInstances",
                        code::INVALID_PARAMETER_VALUE,
                        format!("the filter '{other}' is invalid"),
                    ));
                }
            };
            if !value.is_some_and(|v| values.iter().any(|wanted| wanted == v)) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn session_matches(session: &Session, filters: &[(String, Vec<String>)]) -> Result<bool, Ec2Error> {
        for (name, values) in filters {
            let value = match name.as_str() {
                "network-interface-id" => Some(session.network_interface_id.as_str()),
                "traffic-mirror-session-id" => Some(session.id.as_str()),
                "traffic-mirror-target-id" => Some(session.target_id.as_str()),
                "traffic-mirror-filter-id" => Some(session.filter_id.as_str()),
                tag if tag.starts_with("tag:") => session.tags.get(&tag[4..]).map(String::as_str),
                other => {
                    return Err(Ec2Error::rejected(
                        "DescribeTrafficMirrorSessions",
                        code::INVALID_PARAMETER_VALUE,
                        format!("the filter '{other}' is invalid"),
                    ));
                }
            };
            if !value.is_some_and(|v| values.iter().any(|wanted| wanted == v)) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl Ec2 for FakeEc2 {
    async fn describe_instances(
        &self,
        query: &InstanceQuery,
        next_token: Option<String>,
    ) -> Result<Page<Instance>, Ec2Error> {
        let unfiltered = query.instance_ids.is_empty() && query.filters.is_empty();
        let admission = self.admit("DescribeInstances", unfiltered).await?;
        let result = self.instances_page(query, next_token);
        self.respond("DescribeInstances", admission, result).await
    }

    async fn describe_sessions(
        &self,
        filters: &[(String, Vec<String>)],
        next_token: Option<String>,
    ) -> Result<Page<Session>, Ec2Error> {
        let admission = self.admit("DescribeTrafficMirrorSessions", filters.is_empty()).await?;
        let result = self.sessions_page(filters, next_token);
        self.respond("DescribeTrafficMirrorSessions", admission, result).await
    }

    async fn describe_targets(&self, next_token: Option<String>) -> Result<Page<Target>, Ec2Error> {
        let admission = self.admit("DescribeTrafficMirrorTargets", true).await?;
        let result = {
            let state = self.lock();
            let targets: Vec<&Target> = state.targets.values().collect();
            page_of(&targets, next_token, Self::page_size(&state))
        };
        self.respond("DescribeTrafficMirrorTargets", admission, result).await
    }

    async fn describe_network_interfaces(
        &self,
        ids: &[String],
        next_token: Option<String>,
    ) -> Result<Page<InterfaceAttachment>, Ec2Error> {
        let admission = self.admit("DescribeNetworkInterfaces", ids.is_empty()).await?;
        let result = {
            let state = self.lock();
            let mut found = Vec::new();
            for id in ids {
                if let Some(instance_id) = state.interface_owner.get(id) {
                    found.push(InterfaceAttachment {
                        network_interface_id: id.clone(),
                        instance_id: Some(instance_id.clone()),
                    });
                } else if state.detached_interfaces.contains(id) {
                    found.push(InterfaceAttachment { network_interface_id: id.clone(), instance_id: None });
                }
            }
            let found: Vec<&InterfaceAttachment> = found.iter().collect();
            page_of(&found, next_token, Self::page_size(&state))
        };
        self.respond("DescribeNetworkInterfaces", admission, result).await
    }

    async fn describe_filters(&self, ids: &[String], next_token: Option<String>) -> Result<Page<Filter>, Ec2Error> {
        let admission = self.admit("DescribeTrafficMirrorFilters", ids.is_empty()).await?;
        let result = {
            let state = self.lock();
            let filters: Vec<Filter> =
                state.filters.iter().filter(|id| ids.contains(id)).map(|id| Filter { id: id.clone() }).collect();
            let filters: Vec<&Filter> = filters.iter().collect();
            page_of(&filters, next_token, Self::page_size(&state))
        };
        self.respond("DescribeTrafficMirrorFilters", admission, result).await
    }

    async fn create_session(&self, request: &CreateSession) -> Result<Session, Ec2Error> {
        const OPERATION: &str = "CreateTrafficMirrorSession";
        let admission = self.admit(OPERATION, false).await?;
        let result = {
            let mut state = self.lock();
            let known = state.sessions.len();
            let created = Self::create_in(&mut state, request);
            let delay = state.load.model.visibility_delay;
            if let Ok(session) = &created {
                // Only a new session is hidden, not the first result of a repeated token.
                if state.sessions.len() > known && !delay.is_zero() {
                    state.invisible_until.insert(session.id.clone(), Instant::now() + delay);
                }
            }
            created
        };
        self.respond(OPERATION, admission, result).await
    }

    async fn modify_session(&self, request: &ModifySession) -> Result<Session, Ec2Error> {
        const OPERATION: &str = "ModifyTrafficMirrorSession";
        self.record_write(OPERATION, &request.session_id);
        let admission = self.admit(OPERATION, false).await?;
        let result = self.modify_in(request);
        self.respond(OPERATION, admission, result).await
    }

    async fn delete_session(&self, session_id: &str) -> Result<(), Ec2Error> {
        const OPERATION: &str = "DeleteTrafficMirrorSession";
        self.record_write(OPERATION, session_id);
        let admission = self.admit(OPERATION, false).await?;
        let result = {
            let mut state = self.lock();
            match state.remove_session(session_id) {
                Some(_) => Ok(()),
                None => Err(Ec2Error::rejected(
                    OPERATION,
                    code::SESSION_NOT_FOUND,
                    format!("the session {session_id} does not exist"),
                )),
            }
        };
        self.respond(OPERATION, admission, result).await
    }
}

impl FakeEc2 {
    fn instances_page(&self, query: &InstanceQuery, next_token: Option<String>) -> Result<Page<Instance>, Ec2Error> {
        let state = self.lock();
        if !query.instance_ids.is_empty() {
            // AWS rejects MaxResults with InstanceIds, so such a query returns one page, and an
            // unknown id fails the whole call.
            let mut items = Vec::new();
            for id in &query.instance_ids {
                let instance = state.instances.get(id).ok_or_else(|| {
                    Ec2Error::rejected(
                        "DescribeInstances",
                        code::INSTANCE_NOT_FOUND,
                        format!("the instance ID '{id}' does not exist"),
                    )
                })?;
                if Self::instance_matches(instance, &query.filters)? {
                    items.push(instance.clone());
                }
            }
            return Ok(Page { items, next_token: None });
        }
        let mut matching = Vec::new();
        for instance in state.instances.values() {
            if Self::instance_matches(instance, &query.filters)? {
                matching.push(instance);
            }
        }
        page_of(&matching, next_token, Self::page_size(&state))
    }

    fn sessions_page(
        &self,
        filters: &[(String, Vec<String>)],
        next_token: Option<String>,
    ) -> Result<Page<Session>, Ec2Error> {
        let state = self.lock();
        let now = Instant::now();
        let mut matching = Vec::new();
        for session in state.sessions.values() {
            let visible = state.invisible_until.get(&session.id).is_none_or(|until| *until <= now);
            if visible && Self::session_matches(session, filters)? {
                matching.push(session);
            }
        }
        page_of(&matching, next_token, Self::page_size(&state))
    }

    fn modify_in(&self, request: &ModifySession) -> Result<Session, Ec2Error> {
        const OPERATION: &str = "ModifyTrafficMirrorSession";
        let mut state = self.lock();
        let current = state.sessions.get(&request.session_id).cloned().ok_or_else(|| {
            Ec2Error::rejected(
                OPERATION,
                code::SESSION_NOT_FOUND,
                format!("the session {} does not exist", request.session_id),
            )
        })?;
        if let Some(target_id) = &request.target_id {
            if !state.targets.contains_key(target_id) {
                return Err(Ec2Error::rejected(
                    OPERATION,
                    code::TARGET_NOT_FOUND,
                    format!("the target {target_id} does not exist"),
                ));
            }
        }
        if let Some(filter_id) = &request.filter_id {
            if !state.filters.contains(filter_id) {
                return Err(Ec2Error::rejected(
                    OPERATION,
                    code::FILTER_NOT_FOUND,
                    format!("the filter {filter_id} does not exist"),
                ));
            }
        }
        if let Some(number) = request.number {
            Self::check_number(OPERATION, &state, &current.network_interface_id, number, Some(&current.id))?;
        }
        Self::check_packet_length(OPERATION, request.packet_length)?;
        let session = state.sessions.get_mut(&request.session_id).expect("checked above");
        if let Some(target_id) = &request.target_id {
            session.target_id = target_id.clone();
        }
        if let Some(filter_id) = &request.filter_id {
            session.filter_id = filter_id.clone();
        }
        if let Some(number) = request.number {
            session.number = number;
        }
        if let Some(length) = request.packet_length {
            session.packet_length = Some(length);
        }
        if request.remove_packet_length {
            session.packet_length = None;
        }
        if let Some(vni) = request.virtual_network_id {
            session.virtual_network_id = Some(vni);
        }
        if let Some(description) = &request.description {
            session.description = Some(description.clone());
        }
        if request.remove_description {
            session.description = None;
        }
        Ok(session.clone())
    }
}
