//! AttachNetworkInterface: a new source on an existing instance. The VPC CNI of EKS attaches
//! interfaces to nodes all day.

use serde_json::Value;

use super::{Outcome, insert_id, request_parameters, response_elements};
use crate::events::classification::EventScope;
use crate::events::fields::{ATTACHMENT_PREFIX, INSTANCE_PREFIX, Malformed, NETWORK_INTERFACE_PREFIX, optional_string};

/// Reads `requestParameters.instanceId` (required), `requestParameters.networkInterfaceId` and
/// `responseElements.attachmentId`.
pub(crate) fn parse(detail: &Value) -> Result<Outcome, Malformed> {
    let request = request_parameters(detail).ok_or_else(|| Malformed::missing("detail.requestParameters"))?;
    let instance_path = "detail.requestParameters.instanceId";
    let instance_id =
        optional_string(request, "instanceId", instance_path)?.ok_or_else(|| Malformed::missing(instance_path))?;

    let mut scope = EventScope::default();
    insert_id(&mut scope.instance_ids, instance_id, INSTANCE_PREFIX, instance_path)?;

    let interface_path = "detail.requestParameters.networkInterfaceId";
    if let Some(interface_id) = optional_string(request, "networkInterfaceId", interface_path)? {
        insert_id(&mut scope.network_interface_ids, interface_id, NETWORK_INTERFACE_PREFIX, interface_path)?;
    }

    let attachment_path = "detail.responseElements.attachmentId";
    if let Some(response) = response_elements(detail)
        && let Some(attachment_id) = optional_string(response, "attachmentId", attachment_path)?
    {
        insert_id(&mut scope.attachment_ids, attachment_id, ATTACHMENT_PREFIX, attachment_path)?;
    }
    Ok(Outcome::Wake(scope))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::events::classification::InvalidReason;
    use crate::events::kinds::test_support::{cloudtrail_detail, ids, malformed, woken_scope};

    #[test]
    fn attach_with_null_response() {
        let request = json!({
            "networkInterfaceId": "eni-0cc33dd44ee55ff07",
            "instanceId": "i-0aa11bb22cc33dd07",
            "deviceIndex": "1"
        });
        let scope = woken_scope(parse, &cloudtrail_detail("AttachNetworkInterface", request, json!(null)));
        assert_eq!(scope.instance_ids, ids(&["i-0aa11bb22cc33dd07"]));
        assert_eq!(scope.network_interface_ids, ids(&["eni-0cc33dd44ee55ff07"]));
        assert!(scope.attachment_ids.is_empty());
    }

    #[test]
    fn attach_without_instance_id() {
        let request = json!({"networkInterfaceId": "eni-0cc33dd44ee55ff07", "deviceIndex": 1});
        let error = malformed(parse, &cloudtrail_detail("AttachNetworkInterface", request, json!(null)));
        assert_eq!(error.reason, InvalidReason::MissingField);
    }

    #[test]
    fn attach_with_attachment_id_as_object() {
        let request = json!({"networkInterfaceId": "eni-0cc33dd44ee55ff07", "instanceId": "i-0aa11bb22cc33dd07"});
        let response = json!({"attachmentId": {"value": "eni-attach-0cc33dd44ee55ff07"}});
        let error = malformed(parse, &cloudtrail_detail("AttachNetworkInterface", request, response));
        assert_eq!(error.reason, InvalidReason::WrongType);
    }
}
