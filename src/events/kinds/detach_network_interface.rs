//! DetachNetworkInterface: an owned session may now mirror a source that no policy selects.

use serde_json::Value;

use super::{Outcome, insert_id, request_parameters};
use crate::events::classification::EventScope;
use crate::events::fields::{ATTACHMENT_PREFIX, Malformed, optional_string};

/// Reads `requestParameters.attachmentId`, the only id the record contains. The consumer finds
/// the interface of that attachment in its last inventory.
pub(crate) fn parse(detail: &Value) -> Result<Outcome, Malformed> {
    let request = request_parameters(detail).ok_or_else(|| Malformed::missing("detail.requestParameters"))?;
    let path = "detail.requestParameters.attachmentId";
    let attachment_id = optional_string(request, "attachmentId", path)?.ok_or_else(|| Malformed::missing(path))?;

    let mut scope = EventScope::default();
    insert_id(&mut scope.attachment_ids, attachment_id, ATTACHMENT_PREFIX, path)?;
    Ok(Outcome::Wake(scope))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::events::classification::InvalidReason;
    use crate::events::kinds::test_support::{cloudtrail_detail, ids, malformed, woken_scope};

    #[test]
    fn detach_with_force_as_string() {
        let request = json!({"attachmentId": "eni-attach-0cc33dd44ee55ff07", "force": "true"});
        let scope = woken_scope(parse, &cloudtrail_detail("DetachNetworkInterface", request, json!(null)));
        assert_eq!(scope.attachment_ids, ids(&["eni-attach-0cc33dd44ee55ff07"]));
    }

    #[test]
    fn detach_with_null_request() {
        let error = malformed(parse, &cloudtrail_detail("DetachNetworkInterface", json!(null), json!(null)));
        assert_eq!(error.reason, InvalidReason::MissingField);
    }

    #[test]
    fn detach_with_interface_id_in_place_of_attachment() {
        let request = json!({"attachmentId": "eni-0cc33dd44ee55ff07"});
        let error = malformed(parse, &cloudtrail_detail("DetachNetworkInterface", request, json!(null)));
        assert_eq!(error.reason, InvalidReason::MalformedId);
    }
}
