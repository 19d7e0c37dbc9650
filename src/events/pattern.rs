//! The EventBridge event pattern that matches exactly the events the registry handles.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::kind::{EC2_EVENT_SOURCE, EventKind, RUNNING_STATE, STATE_CHANGE_DETAIL_TYPE};

/// Returns the EventBridge event pattern for exactly the kinds in `EventKind::ALL`.
///
/// One object cannot express "these event names, but only for CloudTrail records", so the pattern
/// has one `$or` branch per (source, detail-type): CloudTrail records of the handled EC2 calls,
/// and state-change notifications to `running`. The CloudTrail branch also requires that
/// `errorCode` is absent, because a failed call wakes nothing and need not reach the queue.
pub fn event_pattern() -> Value {
    let mut event_names: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    let mut native: Vec<(&str, &str)> = Vec::new();
    for kind in EventKind::ALL {
        let key = kind.registry_key();
        match key.event_name {
            Some(event_name) => event_names.entry((key.source, key.detail_type)).or_default().push(event_name),
            None => native.push((key.source, key.detail_type)),
        }
    }

    let mut branches = Vec::new();
    for ((source, detail_type), mut names) in event_names {
        names.sort_unstable();
        branches.push(json!({
            "source": [source],
            "detail-type": [detail_type],
            "detail": {
                "eventSource": [EC2_EVENT_SOURCE],
                "eventName": names,
                "errorCode": [{"exists": false}]
            }
        }));
    }
    for (source, detail_type) in native {
        branches.push(native_branch(source, detail_type));
    }

    let mut sources: Vec<&str> = EventKind::ALL.iter().map(|kind| kind.registry_key().source).collect();
    sources.sort_unstable();
    sources.dedup();
    json!({ "source": sources, "$or": branches })
}

/// Returns the branch for one native detail-type. Only the state-change notification is
/// registered, and only its `running` state wakes a reconcile.
fn native_branch(source: &str, detail_type: &str) -> Value {
    let mut branch = json!({ "source": [source], "detail-type": [detail_type] });
    if detail_type == STATE_CHANGE_DETAIL_TYPE {
        branch["detail"] = json!({ "state": [RUNNING_STATE] });
    }
    branch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::kind::CLOUDTRAIL_DETAIL_TYPE;

    #[test]
    fn pattern_lists_cloudtrail_names_once() {
        let pattern = event_pattern();
        let branches = pattern["$or"].as_array().expect("the pattern has $or branches");
        let cloudtrail: Vec<&Value> =
            branches.iter().filter(|branch| branch["detail-type"][0] == CLOUDTRAIL_DETAIL_TYPE).collect();
        assert_eq!(cloudtrail.len(), 1);
        let names = cloudtrail[0]["detail"]["eventName"].as_array().expect("eventName is a list");
        assert_eq!(names.len(), EventKind::ALL.len() - 1);
    }

    #[test]
    fn pattern_has_one_source() {
        assert_eq!(event_pattern()["source"], json!(["aws.ec2"]));
    }
}
