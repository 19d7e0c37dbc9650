//! The native "EC2 Instance State-change Notification", which needs no CloudTrail trail.

use serde_json::Value;

use super::{Outcome, insert_id};
use crate::events::classification::{EventScope, IgnoreReason};
use crate::events::fields::{INSTANCE_PREFIX, Malformed, optional_string};
use crate::events::kind::RUNNING_STATE;

/// Reads `detail.instance-id` and `detail.state`. Only `running` wakes a reconcile. `pending`
/// comes before it, and the resync prunes the sessions that stopping or terminating leaves.
pub(crate) fn parse(detail: &Value) -> Result<Outcome, Malformed> {
    let state_path = "detail.state";
    let state = optional_string(detail, "state", state_path)?.ok_or_else(|| Malformed::missing(state_path))?;
    if state != RUNNING_STATE {
        return Ok(Outcome::Ignore(IgnoreReason::NotRunning));
    }

    let id_path = "detail.instance-id";
    let instance_id = optional_string(detail, "instance-id", id_path)?.ok_or_else(|| Malformed::missing(id_path))?;
    let mut scope = EventScope::default();
    insert_id(&mut scope.instance_ids, instance_id, INSTANCE_PREFIX, id_path)?;
    Ok(Outcome::Wake(scope))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::events::classification::InvalidReason;
    use crate::events::kinds::test_support::{ids, malformed, woken_scope};

    #[test]
    fn instance_running_wakes_instance() {
        let detail = json!({"instance-id": "i-0cc33dd44ee55ff09", "state": "running"});
        let scope = woken_scope(parse, &detail);
        assert_eq!(scope.instance_ids, ids(&["i-0cc33dd44ee55ff09"]));
    }

    #[test]
    fn instance_stopped_is_ignored() {
        for state in ["pending", "stopping", "stopped", "shutting-down", "terminated"] {
            let detail = json!({"instance-id": "i-0cc33dd44ee55ff09", "state": state});
            assert_eq!(parse(&detail), Ok(Outcome::Ignore(IgnoreReason::NotRunning)), "state {state}");
        }
    }

    #[test]
    fn instance_running_without_id() {
        let error = malformed(parse, &json!({"state": "running"}));
        assert_eq!(error.reason, InvalidReason::MissingField);
    }

    #[test]
    fn instance_state_as_number() {
        let error = malformed(parse, &json!({"instance-id": "i-0cc33dd44ee55ff09", "state": 16}));
        assert_eq!(error.reason, InvalidReason::WrongType);
    }
}
